"""The shared "missing / unexpected / mis-shaped" wording of checkpoint loading and weight import."""

from edgevision.tensor_listing import mismatch_listing


def test_groups_are_counted_capped_and_empty_ones_left_out():
    text = mismatch_listing([("missing", ["a", "b"]), ("unexpected", []), ("mis-shaped", [f"k{i}" for i in range(6)])], shown=4)
    assert text == "2 missing (a, b); 6 mis-shaped (k0, k1, k2, k3 and 2 more)"


def test_entries_holding_shapes_are_separated_by_semicolons():
    assert mismatch_listing([("wrong", ["w (3, 8) != (2, 8)", "v (1,) != (2,)"])]) == "2 wrong (w (3, 8) != (2, 8); v (1,) != (2,))"
    assert mismatch_listing([]) == ""
