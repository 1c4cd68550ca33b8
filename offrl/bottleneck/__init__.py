"""The bottleneck protocol of Park et al. 2024 ("Is Value Learning Really the Main Bottleneck in Offline RL?"):
diagnostics on training, held-out and visited states, test-time policy improvement (OPEX, TTT), and the
data-scaling study (docs/bottleneck.md). Decoupled data lives in :mod:`offrl.data.split`, the two training
phases in :mod:`offrl.trainer.phases`."""
