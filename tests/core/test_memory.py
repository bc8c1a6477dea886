"""The cross-image memory: enqueue, read_positives, draw_negatives."""
import pytest
import torch

from ct_mmseg.core.memory import draw_negatives, enqueue, read_positives


def empty_memory(num_classes=3, size=3, dim=2, dtype=torch.float32):
    return (torch.zeros(num_classes, size, dim, dtype=dtype),
            torch.zeros(num_classes, dtype=torch.long),
            torch.zeros(num_classes, dtype=torch.long))


def numbered(values, dim=2):
    """(K', M, dim) entries whose row m of class j is ``values[j][m]``
    repeated over dim (so a row is recognisable in the bank)."""
    return torch.tensor(values, dtype=torch.float32)[..., None].expand(
        -1, -1, dim).clone()


def stored(bank):
    """The bank's first coordinate, as nested lists."""
    return bank[..., 0].tolist()


def test_enqueue_by_hand_wraps_around_and_bounds_per_step():
    bank, fill, cursor = empty_memory()
    # class 2 first, then class 0; class 1 untouched. per_step 2 caps
    # class 2's three rows at two.
    enqueue(bank, fill, cursor, torch.tensor([2, 0]),
            numbered([[1, 2, 3], [4, 5, 6]]), torch.tensor([3, 1]), 2)
    assert stored(bank) == [[4, 0, 0], [0, 0, 0], [1, 2, 0]]
    assert fill.tolist() == [1, 0, 2]
    assert cursor.tolist() == [1, 0, 2]
    # class 2: two more rows wrap around (slots 2 then 0); class 1: count 0
    enqueue(bank, fill, cursor, torch.tensor([1, 2]),
            numbered([[7, 8, 9], [10, 11, 12]]), torch.tensor([0, 3]), 2)
    assert stored(bank) == [[4, 0, 0], [0, 0, 0], [11, 2, 10]]
    assert fill.tolist() == [1, 0, 3]
    assert cursor.tolist() == [1, 0, 1]
    # per_step above L: at most L = 3 rows, cursor back where it was
    enqueue(bank, fill, cursor, torch.tensor([2]),
            numbered([[20, 21, 22, 23]]), torch.tensor([4]), 10)
    assert stored(bank)[2] == [22, 20, 21]
    assert fill.tolist() == [1, 0, 3]
    assert cursor.tolist() == [1, 0, 1]


def test_enqueue_counts_zero_and_per_step_zero_write_nothing():
    bank, fill, cursor = empty_memory()
    enqueue(bank, fill, cursor, torch.tensor([0, 1]),
            numbered([[1, 2], [3, 4]]), torch.tensor([0, 0]), 2)
    enqueue(bank, fill, cursor, torch.tensor([0, 1]),
            numbered([[1, 2], [3, 4]]), torch.tensor([2, 2]), 0)
    assert bank.abs().sum() == 0
    assert fill.tolist() == [0, 0, 0] and cursor.tolist() == [0, 0, 0]


def test_enqueue_stores_detached_in_the_bank_dtype():
    bank, fill, cursor = empty_memory(dtype=torch.float16)
    entries = torch.full((1, 2, 2), 0.5, dtype=torch.float64,
                         requires_grad=True)
    enqueue(bank, fill, cursor, torch.tensor([1]), entries,
            torch.tensor([2]), 2)
    assert bank.dtype == torch.float16 and not bank.requires_grad
    assert bank[1, :2].tolist() == [[0.5, 0.5], [0.5, 0.5]]


@pytest.mark.parametrize('change,match', [
    (dict(entries=torch.zeros(2, 3, 5)), 'entries'),
    (dict(entries=torch.zeros(1, 3, 2)), 'entries'),
    (dict(counts=torch.tensor([1.0, 2.0])), 'counts'),
    (dict(counts=torch.tensor([1])), 'counts'),
    (dict(class_ids=torch.tensor([[0, 1]])), 'class_ids'),
    (dict(cursor=torch.zeros(2, dtype=torch.long)), 'cursor'),
    (dict(fill=torch.zeros(3)), 'fill'),
    (dict(bank=torch.zeros(3, 0, 2)), 'bank'),
    (dict(per_step=-1), 'per_step'),
])
def test_enqueue_names_the_bad_input(change, match):
    bank, fill, cursor = empty_memory()
    args = dict(bank=bank, fill=fill, cursor=cursor,
                class_ids=torch.tensor([0, 1]), entries=torch.zeros(2, 3, 2),
                counts=torch.tensor([1, 2]), per_step=2)
    args.update(change)
    with pytest.raises(ValueError, match=match):
        enqueue(**args)


def test_read_positives_returns_the_asked_rings():
    bank, fill, cursor = empty_memory()
    enqueue(bank, fill, cursor, torch.tensor([0, 2]),
            numbered([[1, 2, 3], [4, 0, 0]]), torch.tensor([3, 1]), 3)
    rows, count = read_positives(bank, fill, torch.tensor([2, 1, 0]))
    assert rows.shape == (3, 3, 2)
    assert rows[..., 0].tolist() == [[4, 0, 0], [0, 0, 0], [1, 2, 3]]
    assert count.tolist() == [1, 0, 3]
    with pytest.raises(ValueError, match='class_ids'):
        read_positives(bank, fill, torch.tensor([0.0]))


def identity_memory(num_classes, size):
    """Bank whose entry (k, l) is the one-hot vector of k * L + l."""
    dim = num_classes * size
    bank = torch.eye(dim).view(num_classes, size, dim)
    return bank, dim


def owners(rows, size):
    """(class, slot) of each drawn one-hot row."""
    index = rows.argmax(-1)
    return index // size, index % size


def test_draw_negatives_only_other_asked_classes_and_held_slots():
    bank, _ = identity_memory(5, 4)
    fill = torch.tensor([4, 2, 0, 3, 1])
    asked = torch.tensor([3, 0, 1, 2])  # class 4 is not asked
    gen = torch.Generator().manual_seed(0)
    for _ in range(20):
        rows, count = draw_negatives(bank, fill, asked, 6, gen)
        assert rows.shape == (4, 6, 20)
        # other asked classes hold 4+2+0 (for 3), 3+2 (0), 3+4 (1), 9 (2)
        assert count.tolist() == [6, 5, 6, 6]
        for j, k in enumerate(asked.tolist()):
            valid = rows[j, :count[j]]
            assert (valid.sum(-1) == 1).all()  # real one-hot entries
            cls, slot = owners(valid, 4)
            assert (cls != k).all() and (cls != 4).all()
            assert (slot < fill[cls]).all()
            assert len(set((cls * 4 + slot).tolist())) == int(count[j])
            assert rows[j, count[j]:].abs().sum() == 0  # valid rows first


def test_draw_negatives_width_is_bounded_by_what_the_asked_classes_hold():
    bank, _ = identity_memory(6, 2)
    fill = torch.full((6,), 2)
    rows, count = draw_negatives(bank, fill, torch.tensor([1, 4]), 50)
    assert rows.shape == (2, 4, 12)  # K' * L = 4 candidates, never K * L
    assert count.tolist() == [2, 2]
    rows, count = draw_negatives(bank, fill, torch.tensor([3]), 5)
    assert rows.shape == (1, 2, 12) and count.tolist() == [0]
    nothing = torch.tensor([], dtype=torch.long)
    rows, count = draw_negatives(bank, fill, nothing, 5)
    assert rows.shape == (0, 0, 12) and count.shape == (0,)
    rows, count = draw_negatives(bank, fill, torch.tensor([1, 4]), 0)
    assert rows.shape == (2, 0, 12) and count.tolist() == [0, 0]


def test_draw_negatives_is_roughly_uniform_and_seedable():
    bank, _ = identity_memory(3, 4)
    fill = torch.tensor([4, 4, 3])
    asked = torch.tensor([0, 1, 2])
    gen = torch.Generator().manual_seed(3)
    hits = torch.zeros(12)
    draws = 2000
    for _ in range(draws):
        rows, count = draw_negatives(bank, fill, asked, 2, gen)
        hits += rows[0].sum(0)  # class 0 draws 2 of the 7 held entries
    chosen = hits[4:11]  # class 1 slots 0-3 and class 2 slots 0-2
    assert hits[:4].sum() == 0 and hits[11] == 0
    assert chosen.sum() == 2 * draws
    expected = 2 * draws / 7
    assert ((chosen - expected).abs() < 0.15 * expected).all(), chosen
    a = draw_negatives(bank, fill, asked, 3, torch.Generator().manual_seed(9))
    b = draw_negatives(bank, fill, asked, 3, torch.Generator().manual_seed(9))
    c = draw_negatives(bank, fill, asked, 3, torch.Generator().manual_seed(8))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert not torch.equal(a[0], c[0])


def test_memory_outputs_are_detached():
    bank, _ = identity_memory(2, 2)
    bank.requires_grad_()
    fill = torch.tensor([2, 2])
    rows, _ = draw_negatives(bank, fill, torch.tensor([0, 1]), 2)
    positives, _ = read_positives(bank, fill, torch.tensor([0, 1]))
    assert not rows.requires_grad and not positives.requires_grad
    with pytest.raises(ValueError, match='width'):
        draw_negatives(bank, fill, torch.tensor([0, 1]), -1)
