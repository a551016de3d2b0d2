"""Built-in tasks, written with the public API only (`looptrain.task.Task` and the step helpers)."""
