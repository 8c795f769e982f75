from .batch import TaskBatch, TaskFamily
from .bumps import GaussianBumpTasks
from .mixed_sinusoid import MixedSinusoidTasks
from .sinusoid import SinusoidTasks
from .teacher import TeacherTasks

__all__ = ["GaussianBumpTasks", "MixedSinusoidTasks", "SinusoidTasks", "TaskBatch", "TaskFamily", "TeacherTasks"]
