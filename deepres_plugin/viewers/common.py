"""Helpers shared by the DeepRes viewers: show a PNG written by backend/report as a Scipion
plot, read a Scipion volume into a backend Volume with Scipion's voxel size and origin."""
import os

from pwem.viewers import EmPlotter


def clean_path(fn):
    fn = fn or ""
    return fn[:-4] if fn.endswith(":mrc") else fn


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


def colormap_or_default(name, default="jet"):
    """A matplotlib colormap name that exists (the user may type anything in the form)."""
    from matplotlib import colormaps

    return name if name in colormaps else default


def hex_palette(cmap_name, n):
    """``n`` hex colours sampled along a matplotlib colormap (for ChimeraX palettes)."""
    import numpy as np
    from matplotlib import colormaps
    from matplotlib.colors import to_hex

    cmap = colormaps[colormap_or_default(cmap_name)]
    return [to_hex(cmap(t)) for t in np.linspace(0.0, 1.0, max(2, int(n)))]
