"""What the DeepRes viewers share: the base of the resolution viewers (colour-scale params and
range), showing a PNG written by backend/report as a Scipion plot, reading a Scipion volume into
a backend Volume with Scipion's voxel size and origin."""
import os

from pwem.viewers import EmPlotter, LocalResolutionViewer
from pwem.wizards import ColorScaleWizardBase

from ..backend.config import PRESETS
from ..constants import DEFAULT_COLORMAP
from ..protocols.base import clean_path


class DeepResResolutionViewer(LocalResolutionViewer):
    """Base of the viewers of resolution maps (no ``_label``/``_targets``: not registered).
    Subclasses give ``_defaultRange()`` (lowest, highest Å) of their run."""

    def _defineColourScale(self, form):
        lo, hi = self._defaultRange()
        group = form.addGroup("Colour scale")
        ColorScaleWizardBase.defineColorScaleParams(group, defaultLowest=lo, defaultHighest=hi,
                                                    defaultIntervals=11,
                                                    defaultColorMap=DEFAULT_COLORMAP)

    def _range(self):
        """The form's colour range; equal limits (the wizard's convention): the run's own."""
        lo, hi = float(self.lowest.get()), float(self.highest.get())
        return self._defaultRange() if lo == hi else (min(lo, hi), max(lo, hi))

    def _cmap(self):
        return colormap_or_default(self.colorMap.get())

    def _defaultRange(self):
        """Without a run's own range: the standard model's."""
        p = PRESETS["standard"]
        return p.res_min, p.res_max


def png_view(path, title=""):
    """An EmPlotter whose figure shows the PNG at its native size (no axes): the same picture
    the file holds, in a Scipion plot window."""
    import matplotlib.image as mpimg

    img = mpimg.imread(path)
    h, w = img.shape[:2]
    dpi = 100
    plotter = EmPlotter(x=1, y=1, figsize=(w / dpi, h / dpi), dpi=dpi,
                        windowTitle=title or os.path.basename(path))
    fig = plotter.getFigure()
    ax = fig.add_axes([0, 0, 1, 1])
    ax.imshow(img)
    ax.set_axis_off()
    plotter.tightLayoutOn = False
    return plotter


def scipion_volume(obj, what="map"):
    """A backend Volume of a Scipion Volume with Scipion's voxel size and origin (Scipion's
    metadata win over the file header, as everywhere in Scipion)."""
    from ..backend.volume import read_volume

    vol = read_volume(clean_path(obj.getFileName()), what)
    vol.sampling = float(obj.getSamplingRate())
    vol.origin = tuple(float(v) for v in obj.getOrigin(force=True).getShifts())
    vol.nstart = (0, 0, 0)
    return vol


def colormap_or_default(name, default=DEFAULT_COLORMAP):
    """A matplotlib colormap name that exists (the user may type anything in the form)."""
    from matplotlib import colormaps

    return name if name in colormaps else default


def hex_palette(cmap_name, n):
    """``n`` hex colours sampled along a matplotlib colormap (for ChimeraX palettes)."""
    from ..backend.report import hex_colours

    return hex_colours(colormap_or_default(cmap_name), n)
