"""Names shared by the Scipion protocols, viewers and templates: model choices, limits and the
fixed output file names written under each run's ``extra/`` folder (documented in wiki/Scipion.md).

Light module: no pyworkflow, no numpy, so the backend and the CLI may import it too."""
import os

PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))
WEIGHTS_DIR = os.path.join(PACKAGE_DIR, "backend", "weights")
DEEPRES_WEIGHTS_VAR = "DEEPRES_WEIGHTS"

# Where the shipped models live (backend/registry.py finds them: $DEEPRES_WEIGHTS first)
# and the models offered by the Estimate protocol (index = EnumParam value).
MODEL_AUTO, MODEL_STANDARD, MODEL_HIGH, MODEL_COARSE, MODEL_TRAINED = 0, 1, 2, 3, 4
MODEL_CHOICES = ["auto", "standard", "high", "coarse", "trained model"]
SHIPPED_MODELS = ("standard", "high", "coarse")
HIGH_MAX_SAMPLING = 0.75  # Å/px: the `high` model (0.5 Å/px) needs maps at least this fine

# Copies of inputs whose header voxel size or origin disagrees with Scipion's, extra/
INPUT_MAP = "input_map.mrc"
INPUT_MASK = "input_mask.mrc"
INPUT_HALF = "input_half{}.mrc"  # .format(1 or 2)

# ProtDeepResEstimate, extra/
ESTIMATE_MAP = "resolution.mrc"  # local resolution (Å), 0 outside the mask, input grid
ESTIMATE_JSON = "resolution.json"  # stats, model, timings, warnings
ESTIMATE_AUTOMASK = "resolution_mask.mrc"  # written only when no mask was given
ESTIMATE_SPREAD = "resolution_spread.mrc"  # with uncertainty: ±1 spread (Å), 0 outside the mask
ESTIMATE_OOD = "resolution_ood.mrc"  # with uncertainty: 1 = clamped or unlike the training data
ESTIMATE_HISTOGRAM = "histogram.png"
ESTIMATE_SLICES = "slices.png"
ESTIMATE_CHIMERAX = "resolution.cxc"  # script written by the estimation itself
# with an atomic model (backend/residues.py names them after ESTIMATE_MAP): the model with the
# per-residue median as B-factor is resolution_residues.pdb (PDB input) or .cif (otherwise)
ESTIMATE_RESIDUE_CSV = "resolution_residues.csv"
ESTIMATE_RESIDUE_PLOT = "resolution_residues.png"
ESTIMATE_RESIDUE_CHIMERAX = "resolution_residues.cxc"

# Viewer outputs (regenerated with the viewer's settings), extra/
VIEW_HISTOGRAM = "view_histogram.png"
VIEW_SLICES = "view_slices_{axis}.png"
VIEW_ONE_SLICE = "view_slice_{axis}{index}.png"
VIEW_SPREAD = "view_spread_xyz.png"
VIEW_CHIMERAX = "view_chimerax.cxc"
VIEW_RESIDUES = "view_residues.png"
VIEW_RESIDUE_CHIMERAX = "view_residues.cxc"
VIEW_LOSS = "view_loss.png"
VIEW_SIMULATION = "view_truth_vs_map_{axis}.png"

# ProtDeepResSimulate, extra/
SIM_MAP = "simulated_map.mrc"
SIM_TRUTH = "truth_resolution.mrc"  # resolution of the nearest atom's part, 0 outside mask
SIM_MASK = "mask.mrc"
SIM_JSON = "simulation.json"

# ProtDeepResTrain and `deepres train`, in the output folder (the model itself is
# <name>.weights.h5 + <name>.json)
TRAIN_HISTORY = "history.csv"
TRAIN_LOSS_PNG = "loss.png"
TRAIN_CHECKPOINT = "checkpoint"

# Colour scale default of every picture, script and viewer: perceptually uniform, dark = best
# (low Å), yellow = worst; `--cmap` / the viewers' colour-map field choose another.
DEFAULT_COLORMAP = "viridis"
