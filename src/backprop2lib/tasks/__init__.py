from .batch import TaskBatch, TaskFamily
from .bumps import GaussianBumpTasks
from .sinusoid import SinusoidTasks
from .teacher import TeacherTasks

__all__ = ["GaussianBumpTasks", "SinusoidTasks", "TaskBatch", "TaskFamily", "TeacherTasks"]
