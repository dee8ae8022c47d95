import pytest

from jaxcnn.nn.geometry import int_pair, pad_pairs, window_geometry


def test_int_pair_accepts_int_and_pair():
    assert int_pair(2, "stride") == (2, 2)
    assert int_pair((1, 3), "stride") == (1, 3)


@pytest.mark.parametrize(
    "padding, expected",
    [
        (1, ((1, 1), (1, 1))),
        ((1, 2), ((1, 1), (2, 2))),
        (((1, 0), (0, 1)), ((1, 0), (0, 1))),
        ("VALID", ((0, 0), (0, 0))),
        ("valid", ((0, 0), (0, 0))),
    ],
)
def test_pad_pairs_forms(padding, expected):
    assert pad_pairs(padding, (5, 5), (3, 3), (1, 1)) == expected


@pytest.mark.parametrize(
    "n, k, s, expected",
    [
        # out = ceil(n / s); total = (out - 1) * s + k - n; the odd pixel goes at the end.
        (5, 3, 1, (1, 1)),
        (5, 2, 1, (0, 1)),
        (5, 3, 2, (1, 1)),
        (6, 3, 2, (0, 1)),
        (7, 1, 3, (0, 0)),
        (4, 4, 1, (1, 2)),
    ],
)
def test_same_padding_is_tensorflow_rule(n, k, s, expected):
    assert pad_pairs("SAME", (n, n), (k, k), (s, s)) == (expected, expected)


def test_window_geometry_output_size():
    # (in + lo + hi - ((k - 1) * d + 1)) // s + 1 = (7 + 1 + 2 - 5) // 2 + 1 = 3
    geom = window_geometry((7, 7), 3, 2, ((1, 2), (0, 0)), dilation=2)
    assert geom.out_hw == (3, 2)


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        (dict(stride=0), ValueError, "`stride` must be >= 1"),
        (dict(dilation=(1, 0)), ValueError, "`dilation` must be >= 1"),
        (dict(padding=-1), ValueError, "`padding` must be non-negative"),
        (dict(padding=((0, -1), (0, 0))), ValueError, "`padding` must be non-negative"),
        (dict(padding="FULL"), ValueError, "'SAME' or 'VALID', got 'FULL'"),
        (dict(padding=(1, 2, 3)), ValueError, "`padding` must be an int, a pair"),
        (dict(padding=1.5), TypeError, "`padding` must be an int, got float"),
        (dict(stride="2"), TypeError, "`stride` must be an int, got str"),
        (dict(window=(1, 2, 3)), ValueError, "`window` must be an int or a pair"),
        (dict(window=6), ValueError, "larger than the padded input along height"),
    ],
)
def test_bad_geometry(kwargs, error, match):
    args = dict(window=3, stride=1, padding=0) | kwargs
    with pytest.raises(error, match=match):
        window_geometry((5, 5), **args)
