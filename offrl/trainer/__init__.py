"""The shared trainer: any registered (critic, actor) pair, one loop."""
