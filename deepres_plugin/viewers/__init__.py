"""Scipion viewers of the DeepRes plugin. Scipion registers only the classes imported here:
add one line per new viewer."""
from .viewer_estimate import DeepResEstimateViewer
from .viewer_simulate import DeepResSimulateViewer
from .viewer_train import DeepResTrainViewer
from .viewer_sharpening import DeepResSharpeningViewer
