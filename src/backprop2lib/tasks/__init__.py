from .sinusoid import SinusoidTasks, TaskBatch

__all__ = ["SinusoidTasks", "TaskBatch"]
