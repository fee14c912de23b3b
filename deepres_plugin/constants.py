"""Names shared by the Scipion protocols, viewers and templates: model choices, limits and the
fixed output file names written under each run's ``extra/`` folder (documented in wiki/Scipion.md).

Light module: no pyworkflow, no numpy, so the backend and the CLI may import it too."""
import os

PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))
WEIGHTS_DIR = os.path.join(PACKAGE_DIR, "backend", "weights")
DEEPRES_WEIGHTS_VAR = "DEEPRES_WEIGHTS"

# Models offered by the Estimate protocol (index = EnumParam value).
MODEL_AUTO, MODEL_STANDARD, MODEL_HIGH, MODEL_TRAINED = 0, 1, 2, 3
MODEL_CHOICES = ["auto", "standard", "high", "trained model"]
SHIPPED_MODELS = ("standard", "high")
HIGH_MAX_SAMPLING = 0.75  # Å/px: the `high` model (0.5 Å/px) needs maps at least this fine

# ProtDeepResEstimate, extra/
ESTIMATE_MAP = "resolution.mrc"  # local resolution (Å), 0 outside the mask, input grid
ESTIMATE_JSON = "resolution.json"  # stats, model, timings, warnings
ESTIMATE_AUTOMASK = "resolution_mask.mrc"  # written only when no mask was given
ESTIMATE_HISTOGRAM = "histogram.png"
ESTIMATE_SLICES = "slices.png"
ESTIMATE_CHIMERAX = "resolution.cxc"  # script written by the estimation itself

# Viewer outputs (regenerated with the viewer's settings), extra/
VIEW_HISTOGRAM = "view_histogram.png"
VIEW_SLICES = "view_slices_{axis}.png"
VIEW_ONE_SLICE = "view_slice_{axis}{index}.png"
VIEW_CHIMERAX = "view_chimerax.cxc"
VIEW_LOSS = "view_loss.png"
VIEW_SIMULATION = "view_truth_vs_map_{axis}.png"

# ProtDeepResSimulate, extra/
SIM_MAP = "simulated_map.mrc"
SIM_TRUTH = "truth_resolution.mrc"  # resolution of the nearest atom's part, 0 outside mask
SIM_MASK = "mask.mrc"
SIM_JSON = "simulation.json"

# ProtDeepResTrain, extra/  (the model itself is <name>.weights.h5 + <name>.json)
TRAIN_HISTORY = "history.csv"
TRAIN_LOSS_PNG = "loss.png"
TRAIN_CHECKPOINT = "checkpoint"

# Colour scale defaults: resolution maps read "red = worse", as in the paper's figures.
DEFAULT_COLORMAP = "jet"
