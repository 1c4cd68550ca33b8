"""Generative models of actions for policy extractors: diffusion and flow matching.

- :mod:`offrl.generative.diffusion`: DDPM / DPM-Solver, ε-networks, schedules,
  EMA (IDQL's ``diffusion-resample``, ``edp``);
- :mod:`offrl.generative.flow`: flow matching with a velocity field and an
  Euler sampler (FQL's ``fql``, IFQL's ``flow-resample``).

Both model p(a | s) over actions in [−1, 1] and take their randomness as
explicit noise tensors (:class:`offrl.component.Noise`).
"""
