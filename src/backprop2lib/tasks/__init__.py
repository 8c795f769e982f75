from .bumps import GaussianBumpTasks
from .regression import RegressionBatch
from .sinusoid import SinusoidTasks, TaskBatch
from .teacher import TeacherTasks

__all__ = ["GaussianBumpTasks", "RegressionBatch", "SinusoidTasks", "TaskBatch", "TeacherTasks"]
