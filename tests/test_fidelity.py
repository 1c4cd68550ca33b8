"""Fidelity to the papers' code: preset values pinned to their upstream files, LayerNorm placement, the
fql / rebrac initialisations, the joint update order (hand-computed), online-Q options, pairing-scoped
config sections, and presets for datasets offrl cannot provide.

Upstream files (read with the project's search tools; values copied here by hand):
- tinkoff-ai/ReBRAC configs/rebrac/<env>/<env>_<dataset>.yaml, src/networks.py, src/nn.py,
  src/algorithms/rebrac.py; tinkoff-ai/CORL configs/offline/rebrac/<env>/<dataset>_v2.yaml;
- seohongpark/fql agents/fql.py, ifql.py, iql.py, rebrac.py, utils/networks.py, utils/flax_utils.py, README.md;
- sfujim/TD3_BC TD3_BC.py, main.py.
"""
from __future__ import annotations

import math

import pytest
import torch
from torch import nn

import offrl
from offrl.actors import ACTORS
from offrl.component import Component, ParamGroup, Stage, polyak_
from offrl.critics import CRITICS
from offrl.critics.selection import selection_probs
from offrl.errors import ConfigError, OfflineRLError
from offrl.learner import Agent, Learner, UpdateSchedule
from offrl.nets import MLP, EnsembleMLP, init_weights_
from offrl.presets.papers import REBRAC_D4RL_COEFS
from tests.test_learner import CPU, agent, table


# --- preset values against their upstream files -----------------------------------------------------------------
#: tinkoff-ai/ReBRAC configs/rebrac/<env>/<env>_<dataset>.yaml: (actor_bc_coef, critic_bc_coef), each read there.
REBRAC_YAML = {
    "halfcheetah_random.yaml": (0.001, 0.1), "halfcheetah_medium.yaml": (0.001, 0.01),
    "halfcheetah_expert.yaml": (0.01, 0.01), "halfcheetah_medium_expert.yaml": (0.01, 0.1),
    "halfcheetah_medium_replay.yaml": (0.01, 0.001), "halfcheetah_full_replay.yaml": (0.001, 0.1),
    "hopper_random.yaml": (0.001, 0.01), "hopper_medium.yaml": (0.01, 0.01), "hopper_expert.yaml": (0.1, 0.1),
    "hopper_medium_expert.yaml": (0.1, 0.01), "hopper_medium_replay.yaml": (0.05, 0.5),
    "hopper_full_replay.yaml": (0.01, 0.01),
    "walker2d_random.yaml": (0.01, 0.0), "walker2d_medium.yaml": (0.05, 0.1), "walker2d_expert.yaml": (0.01, 0.5),
    "walker2d_medium_expert.yaml": (0.01, 0.01), "walker2d_medium_replay.yaml": (0.05, 0.01),
    "walker2d_full_replay.yaml": (0.01, 0.01),
}


@pytest.mark.parametrize("yaml, coefs", sorted(REBRAC_YAML.items()))
def test_rebrac_table_is_rebracs_configs(yaml: str, coefs: tuple[float, float]) -> None:
    """tinkoff-ai/ReBRAC configs/rebrac/<env>/<yaml> (CORL's configs/offline/rebrac/ hold the same values)."""
    dataset = yaml.removesuffix(".yaml").replace("_", "-", 1).replace("_", "-")
    assert REBRAC_D4RL_COEFS[dataset] == coefs


def test_rebrac_locomotion_is_hopper_medium() -> None:
    """tinkoff-ai/ReBRAC configs/rebrac/hopper/hopper_medium.yaml (= CORL configs/offline/rebrac/hopper/
    medium_v2.yaml): actor_bc_coef 0.01, critic_bc_coef 0.01, lr 1e-3 both, batch 1024, 3×256, critic_ln true,
    actor_ln false, policy_freq 2, policy_noise 0.2, noise_clip 0.5, normalize_states false; src/networks.py:
    LayerNorm after ReLU, biases 0.1, U(±3e-3)/U(±1e-3) outputs; src/algorithms/rebrac.py update_td3: critic,
    then actor on the same batch."""
    cfg = offrl.make_config(preset="rebrac-locomotion")
    c, a = cfg.critic_cfg, cfg.actor_cfg
    assert c.alpha_critic == 0.01 and a.alpha == pytest.approx(1 / 0.01) and a.bc_reduction == "sum"
    assert (c.q_lr, a.lr, c.batch_size, a.batch_size) == (1e-3, 1e-3, 1024, 1024)
    assert c.hidden_dims == a.hidden_dims == (256, 256, 256) and c.activation == a.activation == "relu"
    assert c.layer_norm and c.layer_norm_position == "after-activation" and not a.layer_norm
    assert (c.init, a.init) == ("rebrac", "rebrac")
    assert (a.update_every, c.policy_noise, c.noise_clip, c.q_agg, a.q_agg) == (2, 0.2, 0.5, "min", "min")
    assert not cfg.data.normalize_obs and cfg.trainer.shared_batch and cfg.trainer.update_order == "sequential"


def test_td3bc_locomotion_shares_its_batch() -> None:
    """sfujim/TD3_BC TD3_BC.py train(): one replay_buffer.sample per iteration for critic and actor."""
    cfg = offrl.make_config(preset="td3bc-locomotion")
    assert cfg.trainer.shared_batch and cfg.actor_cfg.update_every == 2 and cfg.actor_cfg.alpha == 2.5


def _manip(critic: str, actor: str):  # noqa: ANN202
    return offrl.make_config(preset="ogbench-manipulation", critic=critic, actor=actor)


def test_ogbench_manipulation_rebrac_cell_is_fqls_rebrac() -> None:
    """seohongpark/fql agents/rebrac.py: actor_noise 0.2, actor_noise_clip 0.5 from the target actor, min of the
    target twins, actor_freq 2, tanh_squash, actor_fc_scale 0.01, alpha_actor 1 / alpha_critic 0 (README's cube
    command)."""
    cfg = _manip("td3", "ddpg-bc")
    c, a = cfg.critic_cfg, cfg.actor_cfg
    assert (c.policy_noise, c.noise_clip, c.q_agg, c.alpha_critic) == (0.2, 0.5, "min", 0.0)
    assert (a.update_every, a.alpha, a.bc_reduction, a.q_agg, a.init) == (2, 1.0, "sum", "min", "fql")
    assert cfg.trainer.update_order == "joint"


def test_ogbench_manipulation_iql_ddpgbc_updates_every_step() -> None:
    """seohongpark/fql agents/iql.py (actor_loss='ddpgbc'): the actor is in every update's total loss."""
    assert _manip("expectile", "ddpg-bc").actor_cfg.update_every == 1


def test_ogbench_manipulation_fql_cell_is_fqls_critic() -> None:
    """seohongpark/fql agents/fql.py: no target smoothing, q_agg mean, layer_norm (after the activation,
    utils/networks.py MLP), one optimiser on the sum of the losses."""
    cfg = _manip("td3", "fql")
    c = cfg.critic_cfg
    assert (c.policy_noise, c.q_agg, c.layer_norm, c.layer_norm_position) == (0.0, "mean", True, "after-activation")
    assert (c.init, c.activation, cfg.actor_cfg.alpha, cfg.trainer.update_order) == ("fql", "gelu-tanh", 300.0, "joint")


def test_ogbench_manipulation_iql_cell_is_fqls_iql() -> None:
    """seohongpark/fql agents/iql.py: AWR with the online min(Q1, Q2) − V, const_std (σ = 1), the unsquashed
    mean of utils/networks.py Actor, expectile 0.9, alpha 1 (README's cube command), constant LR."""
    cfg = _manip("expectile", "gaussian-awr")
    a = cfg.actor_cfg
    assert (a.q_source, a.std, a.tanh_mean, a.beta, a.cosine_decay, a.init) == (
        "online", "fixed", False, 1.0, False, "fql")
    assert cfg.critic_cfg.tau == 0.9 and cfg.trainer.update_order == "joint"


@pytest.mark.parametrize("preset", ["ifql", "ogbench-manipulation"])
def test_ifql_selects_with_the_online_min_q(preset: str) -> None:
    """seohongpark/fql agents/ifql.py sample_actions: critic(...).min(axis=0), argmax; num_samples 32."""
    cfg = offrl.make_config(preset=preset, critic="expectile", actor="flow-resample")
    a = cfg.actor_cfg
    assert (a.q_source, a.q_agg, a.selection, a.num_samples, a.flow_steps) == ("online", "min", "argmax", 32, 10)
    assert cfg.critic_cfg.tau == 0.9 and cfg.trainer.update_order == "joint"


# --- LayerNorm placement, activations -------------------------------------------------------------------------
def test_layer_norm_after_the_activation_is_fqls_and_rebracs_order() -> None:
    """seohongpark/fql utils/networks.py MLP: Dense → activation → LayerNorm; offrl's default: Dense → LN → act."""
    torch.manual_seed(0)
    x = torch.randn(5, 3)
    for position in ("before-activation", "after-activation"):
        mlp = MLP(3, (4,), 2, "relu", layer_norm=True, layer_norm_position=position)
        h = mlp.layers[0](x)
        ln = mlp.norms[0]
        expected = torch.relu(ln(h)) if position == "before-activation" else ln(torch.relu(h))
        torch.testing.assert_close(mlp(x), mlp.out(expected))
        ens = EnsembleMLP(2, 3, (4,), 2, "relu", layer_norm=True, layer_norm_position=position)
        he = ens.layers[0](x.expand(2, 5, 3))
        expected = torch.relu(ens.norms[0](he)) if position == "before-activation" else ens.norms[0](torch.relu(he))
        torch.testing.assert_close(ens(x), ens.out(expected))
    after = MLP(3, (4,), 2, "relu", layer_norm=True, layer_norm_position="after-activation")
    hidden = after.norms[0](torch.relu(after.layers[0](x)))
    assert torch.allclose(hidden.mean(-1), torch.zeros(5), atol=1e-5)  # normalised after the ReLU
    with pytest.raises(OfflineRLError, match="LayerNorm position.*after-activation, before-activation"):
        CRITICS.get("td3").Config(layer_norm_position="middle")


def test_gelu_tanh_is_flaxs_default_gelu() -> None:
    """flax's nn.gelu is jax.nn.gelu(approximate=True): 0.5x(1 + tanh(√(2/π)(x + 0.044715x³)))."""
    x = torch.linspace(-4, 4, 41)
    tanh_gelu = 0.5 * x * (1 + torch.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x**3)))
    mlp = MLP(1, (1,), 1, "gelu-tanh")
    torch.testing.assert_close(mlp.act(x), tanh_gelu)
    assert not torch.allclose(MLP(1, (1,), 1, "gelu").act(x), tanh_gelu, atol=1e-4)


# --- initialisation ---------------------------------------------------------------------------------------------
def _max_abs(t: torch.Tensor) -> float:
    return float(t.detach().abs().max())


def test_fql_init_is_glorot_uniform_with_zero_biases_and_a_small_policy_head() -> None:
    """seohongpark/fql utils/networks.py: default_init = variance_scaling(1, 'fan_avg', 'uniform') (bound
    √(6/(fan_in + fan_out))), flax's zero biases; Actor's mean head variance_scaling(0.01) (bound × 0.1)."""
    torch.manual_seed(0)
    critic = CRITICS.get("expectile")(CRITICS.get("expectile").Config(hidden_dims=(400, 300), init="fql"), 60, 40)
    first = critic.q_net.layers[0]  # [K, 100, 400]
    bound = math.sqrt(6 / (100 + 400))
    assert _max_abs(first.weight) <= bound and _max_abs(first.weight) > 0.97 * bound
    assert float(first.weight.detach().var()) == pytest.approx(bound**2 / 3, rel=0.05)  # uniform: bound²/3
    assert _max_abs(critic.q_net.out.weight) > 0.9 * math.sqrt(6 / 301)  # Q's output layer: scale 1
    assert all(torch.count_nonzero(b) == 0 for n, b in critic.named_parameters() if n.endswith("bias"))
    cls = ACTORS.get("gaussian-awr")
    actor = cls(cls.Config(hidden_dims=(400, 300), init="fql"), 60, 40, 10)
    head = actor.mean_net.out.weight  # [40, 300]
    head_bound = math.sqrt(3 * 0.01 / ((300 + 40) / 2))
    assert _max_abs(head) <= head_bound and _max_abs(head) > 0.9 * head_bound
    fql_cls = ACTORS.get("fql")
    fql = fql_cls(fql_cls.Config(hidden_dims=(300,), init="fql"), 60, 40, 10)
    assert _max_abs(fql.onestep.out.weight) > 0.9 * math.sqrt(6 / 340)  # ActorVectorField: default_init()


def test_rebrac_init() -> None:
    """tinkoff-ai/ReBRAC src/networks.py + src/nn.py: hidden kernels pytorch_init(fan_in) = U(±1/√fan_in),
    biases constant 0.1; Critic's output Dense U(±3e-3) kernel and bias, DetActor's U(±1e-3)."""
    torch.manual_seed(0)
    cls = CRITICS.get("td3")
    critic = cls(cls.Config(hidden_dims=(256, 256), init="rebrac"), 20, 6)
    for layer in critic.q_net.layers:
        assert torch.all(layer.bias == 0.1)
        fan_in = layer.weight.shape[1]
        assert 0.95 / math.sqrt(fan_in) < _max_abs(layer.weight) <= 1 / math.sqrt(fan_in)
    out = critic.q_net.out
    assert 2.5e-3 < _max_abs(out.weight) <= 3e-3 and 0 < _max_abs(out.bias) <= 3e-3
    acls = ACTORS.get("ddpg-bc")
    actor = acls(acls.Config(hidden_dims=(256, 256), init="rebrac"), 20, 6, 10)
    assert 0.8e-3 < _max_abs(actor.mean_net.out.weight) <= 1e-3 and _max_abs(actor.mean_net.out.bias) <= 1e-3
    assert all(torch.all(layer.bias == 0.1) for layer in actor.mean_net.layers)
    assert all(torch.equal(p, q) for p, q in zip(actor.mean_net.parameters(), actor.mean_target.parameters()))


def test_init_roles_are_validated() -> None:
    with pytest.raises(OfflineRLError, match="network role"):
        init_weights_(nn.Linear(2, 2), "fql", role="value")


# --- online Q and the FQL-IQL Gaussian ---------------------------------------------------------------------------
def test_flow_resample_scores_candidates_with_the_online_q() -> None:
    """q_source=online ranks by the online ensemble (IFQL), target by the Polyak copies."""
    cls = CRITICS.get("expectile")
    critic = cls(cls.Config(hidden_dims=(16,)), 3, 2)
    with torch.no_grad():  # make the online and the target Q disagree
        for p in critic.q_net.parameters():
            p.mul_(-1)
    obs, cand = torch.randn(6, 3), torch.rand(6, 8, 2) * 2 - 1
    online = selection_probs(critic, obs, cand, "argmax", q_source="online")
    target = selection_probs(critic, obs, cand, "argmax")
    q_online = critic.q_for_actor(obs.repeat_interleave(8, 0), cand.reshape(-1, 2)).reshape(6, 8)
    assert torch.equal(online.argmax(-1), q_online.argmax(-1))
    assert not torch.equal(online, target)
    with pytest.raises(OfflineRLError, match="actor.q_source"):
        ACTORS.get("flow-resample").Config(q_source="both")


def test_gaussian_awr_as_fqls_iql() -> None:
    """agents/iql.py: log N(a; μ(s), I) with μ the linear head (no tanh), weights exp(α(min Q − V)) from the
    online critic; σ is no parameter."""
    cls = ACTORS.get("gaussian-awr")
    torch.manual_seed(0)
    actor = cls(cls.Config(hidden_dims=(8,), std="fixed", tanh_mean=False, q_source="online", beta=2.0), 3, 2, 10)
    assert "log_std" not in dict(actor.named_parameters())
    ccls = CRITICS.get("expectile")
    critic = ccls(ccls.Config(hidden_dims=(8,)), 3, 2)
    with torch.no_grad():
        for p in critic.q_net.parameters():
            p.add_(0.3)  # online ≠ target
    obs, act = torch.randn(7, 3), torch.rand(7, 2) * 2 - 1
    mu = actor.mean_net(obs)
    assert torch.equal(actor.mean(obs), mu)
    log_prob = (-0.5 * (act - mu) ** 2 - 0.5 * math.log(2 * math.pi)).sum(-1)
    adv = critic.q_for_actor(obs, act).detach() - critic.v(obs)
    expected = -(torch.exp(torch.clamp(2.0 * adv, max=math.log(100.0))) * log_prob).mean()
    from offrl.data.transitions import Batch

    batch = Batch(obs, act, torch.zeros(7), obs, torch.zeros(7), act, torch.ones(7))
    loss, _ = actor.loss(batch, {}, critic)
    torch.testing.assert_close(loss, expected)
    assert not torch.allclose(critic.advantage(obs, act), adv)


# --- pairing-scoped sections and presets for unavailable data ---------------------------------------------------
def test_pairing_sections_apply_to_their_pairing_only_and_win_within_a_layer() -> None:
    layer = {"actor@td3+ddpg-bc": {"update_every": 3}, "actor@ddpg-bc": {"update_every": 2, "alpha": 4.0},
             "critic@td3+ddpg-bc": {"policy_noise": 0.1}}
    from offrl.config import parse_set, resolve

    td3 = resolve([layer, {"critic": {"name": "td3"}, "actor": {"name": "ddpg-bc"}}])
    assert (td3.actor_cfg.update_every, td3.actor_cfg.alpha, td3.critic_cfg.policy_noise) == (3, 4.0, 0.1)
    iql = resolve([layer, {"critic": {"name": "expectile"}, "actor": {"name": "ddpg-bc"}}])
    assert iql.actor_cfg.update_every == 2
    other = resolve([layer, {"critic": {"name": "td3"}, "actor": {"name": "fql"}}])
    assert other.critic_cfg.policy_noise == 0.2  # td3's default: the pairing section is not for td3 + fql
    later = resolve([layer, {"critic": {"name": "td3"}, "actor": {"name": "ddpg-bc", "update_every": 5}}])
    assert later.actor_cfg.update_every == 5  # a later plain key wins over an earlier scoped one
    assert parse_set(["actor@td3+ddpg-bc.update_every=2"]) == {"actor@td3+ddpg-bc": {"update_every": "2"}}
    with pytest.raises(OfflineRLError, match="Unknown actor 'ddpg'"):
        resolve([{"actor@td3+ddpg": {"alpha": 1}}])


@pytest.mark.parametrize("preset, family", [("fql-ogbench-antmaze", "antmaze"), ("fql-ogbench-antsoccer", "antsoccer"),
                                            ("fql-ogbench-humanoidmaze", "humanoidmaze")])
def test_presets_for_data_offrl_cannot_provide_say_so(preset: str, family: str) -> None:
    """OGBench's navigation datasets: no recipe, no download; the preset says so and refuses the bandit."""
    with pytest.raises(ConfigError, match=f"is for {family} datasets.*neither make.*nor download"):
        offrl.make_config(preset=preset)
    assert offrl.make_config(preset=preset, dataset=f"mine/{family}-navigate-v0").actor == "fql"
    from offrl.presets import PRESETS

    assert "neither make" in PRESETS.entry(preset).description and "neither make" in PRESETS.get(preset).describe()


def test_offrl_list_marks_them() -> None:
    from tests.helpers import run_cli

    proc = run_cli("list", "preset")
    assert proc.returncode == 0, proc.stderr
    text = " ".join(proc.stdout.split())
    assert "antmaze data: offrl can neither make" in text.replace("│ ", "").replace(" │", "")


# --- the joint update order ---------------------------------------------------------------------------------------
class _Scalar(Component):
    """A stand-in component with one scalar parameter ``w`` and a frozen copy ``w_bar`` (ρ = ½ Polyak)."""

    Config = None

    def __init__(self, name: str, w0: float, loss) -> None:  # noqa: ANN001
        super().__init__()
        self.cfg = type("Cfg", (), {"update_every": 1})()
        self.name = name
        self.w = nn.Parameter(torch.tensor([w0]))
        self.w_bar = nn.Parameter(torch.tensor([w0]), requires_grad=False)
        self._loss = loss

    def param_groups(self) -> dict[str, ParamGroup]:
        return {"w": ParamGroup([self.w], lr=0.1)}

    def stages(self) -> list[Stage]:
        return [Stage("w", lambda batch, noise, other: (self._loss(self.w, other.w), {f"{self.name}/w": self.w[0]}))]

    @torch.no_grad()
    def after_update(self, step: torch.Tensor) -> None:
        polyak_([self.w_bar], [self.w], 0.5)


def _adam(grads: list[float], lr: float = 0.1, b1: float = 0.9, b2: float = 0.999, eps: float = 1e-8) -> list[float]:
    """Cumulative Adam displacement after each gradient (PyTorch's and optax's formula), by hand."""
    m = v = 0.0
    out, total = [], 0.0
    for t, g in enumerate(grads, 1):
        m, v = b1 * m + (1 - b1) * g, b2 * v + (1 - b2) * g * g
        total -= lr * (m / (1 - b1**t)) / (math.sqrt(v / (1 - b2**t)) + eps)
        out.append(total)
    return out


def _scalar_learner(order: str, actor_every: int = 1) -> Learner:
    critic = _Scalar("critic", 1.0, lambda c, a: ((c - a) ** 2).sum())  # L_c = (c − a)², a a constant
    actor = _Scalar("actor", 0.0, lambda a, c: ((a - 2 * c) ** 2).sum())  # L_a = (a − 2c)², c a constant
    schedule = UpdateSchedule(critic_batch=4, actor_batch=4, actor_every=actor_every, order=order)
    return Learner([Agent(critic, actor)], [0], table(20), schedule, CPU)


def test_joint_order_by_hand() -> None:
    """Two iterations. Joint: both gradients from the pre-step (c, a) — g_c = 2(c − a), g_a = 2(a − 2c) —,
    targets moved towards the pre-step values, then both Adam steps. Sequential: the actor's gradient
    reads the c just updated, the target the stepped c."""
    joint, seq = _scalar_learner("joint"), _scalar_learner("sequential")
    joint.train(2)
    seq.train(2)
    # joint, by hand: (c, a) = (1, 0) → g = (2, −4); then (c1, a1) = (0.9, 0.1) → g = (1.6, −3.4)
    c1, a1 = 1.0 + _adam([2.0])[0], 0.0 + _adam([-4.0])[0]
    assert (c1, a1) == pytest.approx((0.9, 0.1), abs=1e-6)
    c2, a2 = 1.0 + _adam([2.0, 2 * (c1 - a1)])[1], 0.0 + _adam([-4.0, 2 * (a1 - 2 * c1)])[1]
    s = joint.stack.state
    assert float(s["critic.w"][0, 0]) == pytest.approx(c2, abs=1e-6)
    assert float(s["actor.w"][0, 0]) == pytest.approx(a2, abs=1e-6)
    c_bar = 0.5 * (0.5 * 1.0 + 0.5 * 1.0) + 0.5 * c1  # towards c0 = 1, then towards c1 (the pre-step values)
    assert float(s["critic.w_bar"][0, 0]) == pytest.approx(c_bar, abs=1e-6)
    # sequential, by hand: the actor sees c after the critic's step
    sc1 = 1.0 + _adam([2.0])[0]
    sa1 = 0.0 + _adam([2 * (0.0 - 2 * sc1)])[0]
    sc2 = 1.0 + _adam([2.0, 2 * (sc1 - sa1)])[1]
    sa2 = 0.0 + _adam([2 * (0.0 - 2 * sc1), 2 * (sa1 - 2 * sc2)])[1]
    t = seq.stack.state
    assert float(t["critic.w"][0, 0]) == pytest.approx(sc2, abs=1e-6)
    assert float(t["actor.w"][0, 0]) == pytest.approx(sa2, abs=1e-6)
    assert float(t["critic.w_bar"][0, 0]) == pytest.approx(0.5 * (0.5 + 0.5 * sc1) + 0.5 * sc2, abs=1e-6)
    assert abs(a2 - sa2) > 1e-5 and abs(c_bar - (0.5 * (0.5 + 0.5 * sc1) + 0.5 * sc2)) > 1e-2  # they differ


def test_joint_order_steps_an_actor_that_is_not_due_with_zero_gradients() -> None:
    """FQL's ReBRAC (agents/rebrac.py, full_update=False): one optax.adam over every parameter, so on the
    iterations without the actor loss its parameters still move by Adam's momentum; its target does not."""
    lrn = _scalar_learner("joint", actor_every=2)
    lrn.train(2)  # iteration 0: actor due; iteration 1: not due
    a_moves = _adam([-4.0, 0.0])
    assert float(lrn.stack.state["actor.w"][0, 0]) == pytest.approx(a_moves[1], abs=1e-6)
    assert a_moves[1] < a_moves[0] < 0 or a_moves[1] > a_moves[0] > 0  # it moved on, by momentum
    assert float(lrn.stack.state["actor.w_bar"][0, 0]) == pytest.approx(0.0, abs=1e-7)  # target: pre-step a0
    assert lrn.update_counts["actor"].item() == 1 and lrn.optims["actor/w"].count.item() == 2
    assert UpdateSchedule(actor_every=2, order="joint").actor_updates_in(10) == 10


def test_joint_iql_q_target_uses_the_pre_step_v() -> None:
    """agents/iql.py, ifql.py critic_loss: next_v = value(next_obs) with the stored (pre-step) params. After
    one joint step Q moved by Adam's first step on ∇ of L_Q with the initial V; sequentially, with V stepped."""
    schedule = UpdateSchedule(critic_batch=16, actor_batch=16, order="joint")
    lrn = Learner([agent("expectile", "gaussian-awr", 0)], [0], table(), schedule, CPU)
    rand = lrn.rng.draw(lrn._plan((True, True)))
    batch = lrn.table.gather(rand[0])
    fresh = agent("expectile", "gaussian-awr", 0).critic  # the same initial weights, unsealed
    b = type(batch)(*[t[0] for t in batch])  # seed 0's batch, without the seed axis
    q_loss, _ = fresh.q_loss(b, {}, None)
    grads = torch.autograd.grad(q_loss, list(fresh.q_net.parameters()))
    expected = [p.detach() - 3e-4 * g / (g.abs() + 1e-8) for p, g in zip(fresh.q_net.parameters(), grads)]
    with torch.no_grad():
        lrn._iteration(rand, (True, True))
    got = [lrn.stack.state[f"critic.q_net.{n}"][0] for n, _ in fresh.q_net.named_parameters()]
    for e, g in zip(expected, got):
        torch.testing.assert_close(g, e, rtol=1e-5, atol=1e-7)


def _adam_first_step(params: list[torch.Tensor], loss: torch.Tensor, lr: float) -> list[torch.Tensor]:
    """Adam's first step by hand: m̂ = g, v̂ = g², so p ← p − lr · g / (|g| + ε)."""
    grads = torch.autograd.grad(loss, params)
    return [p.detach() - lr * g / (g.abs() + 1e-8) for p, g in zip(params, grads)]


def test_shared_batch_runs_iqls_code_order_on_one_batch() -> None:
    """ikostrikov/implicit_q_learning learner.py ``_update_jit``: update_v, then awr_update_actor with the new
    V, then update_q with the new V, then target_update, all on one batch — the `iql-locomotion` preset's
    order (trainer.shared_batch=true; issue 25 measured it against separate batches). By hand after one
    iteration: V moved by Adam's first step on L_V(b); the actor's logged loss is L_π(b) read with that new V;
    Q moved by Adam's first step on L_Q(b) with that new V."""
    assert offrl.make_config(preset="iql-locomotion").trainer.shared_batch
    schedule = UpdateSchedule(critic_batch=16, actor_batch=16, shared_batch=True)
    lrn = Learner([agent("expectile", "gaussian-awr", 0)], [0], table(), schedule, CPU)
    rand = lrn.rng.draw(lrn._plan((True, True)))
    tab = lrn.tables["critic"]
    batch = tab.gather(tab.indices(rand[0]))
    b = type(batch)(*[t[0] for t in batch])  # seed 0's batch, without the seed axis
    fresh = agent("expectile", "gaussian-awr", 0)  # the same initial weights
    critic, actor = fresh.critic, fresh.actor
    v_params = list(critic.v_net.parameters())
    v_new = _adam_first_step(v_params, critic.v_loss(b, {}, None)[0], critic.cfg.v_lr)
    pre_v_actor_loss = float(actor.loss(b, {}, critic)[0].detach())
    pre_v_q_loss = float(critic.q_loss(b, {}, None)[0].detach())
    with torch.no_grad():
        for p, e in zip(v_params, v_new):
            p.copy_(e)
    actor_loss = float(actor.loss(b, {}, critic)[0].detach())
    q_loss = critic.q_loss(b, {}, None)[0]
    q_new = _adam_first_step(list(critic.q_net.parameters()), q_loss, critic.cfg.q_lr)
    with torch.no_grad():
        lrn._iteration(rand, (True, True))
    state = lrn.stack.state
    for (n, _), e in zip(critic.v_net.named_parameters(), v_new):
        torch.testing.assert_close(state[f"critic.v_net.{n}"][0], e, rtol=1e-5, atol=1e-7)
    for (n, _), e in zip(critic.q_net.named_parameters(), q_new):
        torch.testing.assert_close(state[f"critic.q_net.{n}"][0], e, rtol=1e-5, atol=1e-7)
    logged = float(lrn.sums["actor/loss"][0])  # one iteration: the sum is its value
    assert logged == pytest.approx(actor_loss, rel=1e-5) and abs(logged - pre_v_actor_loss) > 1e-6
    # Adam's first step is nearly sign(g), so the weights barely tell which V the Q target read; its loss does.
    logged_q = float(lrn.sums["critic/q_loss"][0])
    assert logged_q == pytest.approx(float(q_loss.detach()), rel=1e-5) and abs(logged_q - pre_v_q_loss) > 1e-6


@pytest.mark.parametrize("critic, actor, every", [("td3", "fql", 1), ("expectile", "flow-resample", 1),
                                                  ("td3", "ddpg-bc", 2), ("expectile", "gaussian-awr", 1)])
def test_joint_seeds_together_match_seeds_alone(critic: str, actor: str, every: int) -> None:
    schedule = UpdateSchedule(critic_batch=32, actor_batch=32, actor_every=every, order="joint")
    opts = {"update_every": every} if every > 1 else {}
    group = Learner([agent(critic, actor, s, **opts) for s in (0, 1)], [0, 1], table(), schedule, CPU)
    solo = Learner([agent(critic, actor, 1, **opts)], [1], table(), schedule, CPU)
    group.train(5)
    solo.train(5)
    for name, value in solo.stack.state.items():
        torch.testing.assert_close(group.stack.state[name][1], value[0], rtol=1e-4, atol=1e-5, msg=name)


def test_joint_needs_one_update_on_one_batch() -> None:
    with pytest.raises(ConfigError, match="update_order=joint.*equal batch sizes"):
        UpdateSchedule(critic_batch=32, actor_batch=64, order="joint")
    with pytest.raises(OfflineRLError, match="trainer.update_order.*joint, sequential"):
        offrl.make_config(overrides={"trainer.update_order": "parallel"})


@pytest.mark.slow
def test_joint_order_compiles_to_the_eager_result() -> None:
    """trainer.compile=on: the joint iteration under torch.compile gives the eager parameters."""
    schedule = UpdateSchedule(critic_batch=16, actor_batch=16, order="joint")
    eager = Learner([agent("td3", "fql", 0)], [0], table(), schedule, CPU, mode="off")
    compiled = Learner([agent("td3", "fql", 0)], [0], table(), schedule, CPU, mode="on")
    eager.train(3)
    compiled.train(3)
    assert compiled._compiled is not None
    for name, value in eager.stack.state.items():
        torch.testing.assert_close(compiled.stack.state[name], value, rtol=1e-4, atol=1e-5, msg=name)
