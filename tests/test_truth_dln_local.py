"""The local learning coefficient of a deep linear network at a given factorisation
(``llcbench.truth.dln_local``): its rules against Aoyagi's formula where they must agree, its
invariances and its bounds."""

import random

import pytest

from llcbench.errors import TruthError
from llcbench.families.dln import generic_truth, generic_side
from llcbench.truth.dln import dln_truth
from llcbench.truth.dln_local import differential_rank, generic_chain_ranks, local_bounds, local_truth, reduce_chain


def _local(widths, layer_ranks):
    return local_truth(widths, generic_chain_ranks(widths, layer_ranks))


@pytest.mark.parametrize("widths", [[3, 4, 2], [5, 2, 5, 3], [2, 6, 6, 1, 4], [4, 4, 4, 4]])
def test_canonical_chains_are_aoyagi(widths):
    """Every layer of the product's rank r: the canonical class, whose local value is Aoyagi's."""
    for r in range(min(widths) + 1):
        t = _local(widths, [r] * (len(widths) - 1))
        a = dln_truth(widths, r)
        assert (t.lam, t.multiplicity) == (a.lam, a.multiplicity)


def test_two_layer_rule_is_the_reduced_rank_formula_at_canonical_points():
    """The two-layer rule, evaluated at R01 = R12 = r, is Aoyagi & Watanabe's reduced-rank formula for
    every widths <= 5 (the rule is derived independently of that formula)."""
    from llcbench.truth.dln_local import _two_layers

    for h in [(a, b, c) for a in range(1, 6) for b in range(1, 6) for c in range(1, 6)]:
        for r in range(min(h) + 1):
            got = _two_layers(list(h), generic_chain_ranks(h, [r, r]))
            want = dln_truth(list(h), r)
            assert got == (want.lam, want.multiplicity), (h, r)


def test_submersion_points_agree_with_the_generic_variant():
    """A chain whose first M−1 layers are injective (or last M−1 surjective) is a regular point of
    the product map: the absorbing rule must give the generic variant's H_0·H_M/2."""
    for widths, ranks in [([3, 4, 5, 2], [3, 4, 1]), ([2, 3, 3, 2], [2, 3, 1]), ([5, 4, 3, 2], [0, 3, 2])]:
        if generic_side(widths) is None:
            continue
        t = _local(widths, ranks)
        assert t.lam == generic_truth(widths, min(ranks)).lam and t.multiplicity == 1, widths


def test_local_value_is_transpose_invariant_and_above_its_bounds():
    """Reversing the chain (transposing every layer) leaves K's singularity unchanged, so the two
    computations, which absorb different layers, must agree; and every certified value lies above the
    global value and half the rank of dP (both theorems). 3,000 random chains, widths <= 7."""
    rng = random.Random(7)
    certified = 0
    for _ in range(3000):
        m = rng.randint(1, 5)
        h = [rng.randint(1, 7) for _ in range(m + 1)]
        lr = [rng.randint(0, min(h[j], h[j + 1])) for j in range(m)]
        try:
            a = _local(h, lr)
        except TruthError:
            continue
        b = _local(h[::-1], lr[::-1])
        glob, low = local_bounds(h, generic_chain_ranks(h, lr))
        assert (a.lam, a.multiplicity) == (b.lam, b.multiplicity), (h, lr)
        assert a.lam >= low >= glob
        certified += 1
    assert certified > 1500  # the rules cover most small chains


def test_uncertified_chains_are_refused_with_their_bounds():
    # three layers, none of full rank, unequal ranks: no rule applies
    with pytest.raises(TruthError, match="not certified.*<= lambda_local"):
        _local([6, 6, 6, 6], [2, 3, 4])


def test_differential_rank_and_reduction():
    h = [4, 4, 4]
    assert differential_rank(h, generic_chain_ranks(h, [4, 1])) == 16  # W_1 invertible: a submersion
    assert differential_rank(h, generic_chain_ranks(h, [1, 1])) == 1 * 4 + 3 * 1
    w, _, removed = reduce_chain([3, 5, 5, 2], generic_chain_ranks([3, 5, 5, 2], [3, 5, 2]))
    assert w == [3, 2] and removed == [1, 2]
