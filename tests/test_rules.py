"""The learning-rule registry."""

from __future__ import annotations

import pytest
import torch

from fa_core.rules import RULES, LearningRule, get_rule, register_rule


def test_registry_names():
    assert {"bp", "fa", "fa_ex"} <= set(RULES)


def test_get_rule_by_name_spec_and_object():
    rule = get_rule("fa_ex", p=80)
    assert rule.display_name() == "FA_EX-80%"
    assert get_rule(rule.spec()) == rule
    assert get_rule(rule) is rule
    assert get_rule("fa_ex").params() == {"p": 100.0, "c": 0.5}


@pytest.mark.parametrize("bad", [-1, 100.5, 1000])
def test_fa_ex_p_outside_range_is_refused(bad):
    with pytest.raises(ValueError, match="between 0 and 100"):
        get_rule("fa_ex", p=bad)


def test_unknown_rule_and_bad_params_have_clear_messages():
    with pytest.raises(ValueError, match="unknown learning rule 'nope'.*bp"):
        get_rule("nope")
    with pytest.raises(ValueError, match="bad parameters for rule 'fa'"):
        get_rule("fa", p=3)


def test_bp_operand_is_the_weight_and_fa_operand_is_b():
    w = torch.randn(3, 4)
    init = lambda t, g: t.normal_(generator=g)  # noqa: E731
    assert get_rule("bp").make_feedback(w, init, None) is None
    assert get_rule("bp").backward_operand(w, None) is w
    b = get_rule("fa").make_feedback(w, init, torch.Generator().manual_seed(0))
    assert b.shape == w.shape and get_rule("fa").backward_operand(w, b) is b


def test_registering_a_new_rule_is_one_class():
    @register_rule
    class SignSymmetry(LearningRule):
        """Test-only rule: B = sign(W) at creation."""

        name = "test_sign"
        label = "SIGN"

        def make_feedback(self, weight, init, generator):
            return torch.sign(weight)

    try:
        from fa_core import FeedbackLinear

        layer = FeedbackLinear(4, 3, rule="test_sign")
        assert torch.equal(layer.feedback, torch.sign(layer.weight.detach()))
        with pytest.raises(ValueError, match="registered twice"):
            register_rule(SignSymmetry)
    finally:
        RULES.pop("test_sign")
