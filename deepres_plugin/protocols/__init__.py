"""Scipion protocols of the DeepRes plugin. Scipion registers only the classes imported here:
add one line per new protocol."""
from .protocol_estimate import ProtDeepResEstimate
from .protocol_simulate import ProtDeepResSimulate
from .protocol_train import ProtDeepResTrain
from .protocol_sharpening import ProtDeepResSharpening
