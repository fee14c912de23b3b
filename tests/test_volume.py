"""MRC I/O: exact round trip of a real deposited map, and every bad input refused clearly."""
from __future__ import annotations

import logging
import os
import warnings

import mrcfile
import numpy as np
import pytest

from deepres_plugin.backend.volume import (InputError, Volume, atomic_path, atomic_write_text,
                                           check_mask, read_mask, read_volume, write_volume)


def _write(path, data, voxel_size=1.0, origin=(0.0, 0.0, 0.0)):
    with warnings.catch_warnings():  # mrcfile warns about the NaN/Inf we write on purpose
        warnings.simplefilter("ignore")
        return _write_mrc(path, data, voxel_size, origin)


def _write_mrc(path, data, voxel_size, origin):
    with mrcfile.new(str(path), overwrite=True) as mrc:
        mrc.set_data(np.asarray(data, np.float32))
        mrc.voxel_size = voxel_size
        mrc.header.origin.x, mrc.header.origin.y, mrc.header.origin.z = origin
    return str(path)


def test_real_map_header(real_map):
    vol = read_volume(real_map)
    assert vol.shape == (100, 100, 100)
    assert vol.sampling == pytest.approx(1.742, abs=1e-6)
    assert vol.origin == (0.0, 0.0, 0.0)
    assert vol.nstart == (-50, -50, -50)
    assert float(vol.data.min()) == pytest.approx(-32.0, abs=0.01)  # maps/MANIFEST.csv
    assert float(vol.data.max()) == pytest.approx(41.87, abs=0.01)


def test_real_map_round_trip(real_map, tmp_path):
    vol = read_volume(real_map)
    out = write_volume(str(tmp_path / "copy.mrc"), vol)
    back = read_volume(out)
    assert back.shape == vol.shape
    assert back.sampling == vol.sampling
    assert back.origin == vol.origin
    assert back.nstart == vol.nstart
    assert np.array_equal(back.data, vol.data)
    with mrcfile.open(out) as mrc:  # the header itself, as other programs read it
        assert float(mrc.voxel_size.x) == pytest.approx(1.742, abs=1e-6)
        assert (int(mrc.header.nxstart), int(mrc.header.nystart),
                int(mrc.header.nzstart)) == (-50, -50, -50)
        assert float(mrc.header.dmax) == pytest.approx(float(vol.data.max()))
    assert sorted(os.listdir(tmp_path)) == ["copy.mrc"]  # no temp file left behind


def test_round_trip_keeps_nonzero_origin(data_path, tmp_path):
    vol = read_volume(data_path("maps/emd_5168_monomer.mrc.gz"))
    assert vol.shape == (41, 43, 28)
    back = read_volume(write_volume(str(tmp_path / "m.mrc"), vol))
    assert back.origin == pytest.approx((-33.098, -24.388, -90.584), abs=1e-3)
    assert back.origin == vol.origin and np.array_equal(back.data, vol.data)


def test_non_standard_axis_order_is_reordered(tmp_path):
    rng = np.random.default_rng(0)
    zyx = rng.standard_normal((6, 7, 8)).astype(np.float32)
    path = str(tmp_path / "xyz.mrc")
    with mrcfile.new(path) as mrc:  # stored with sections = x, rows = y, columns = z
        mrc.set_data(np.ascontiguousarray(zyx.transpose(2, 1, 0)))
        mrc.voxel_size = 1.0
        mrc.header.mapc, mrc.header.mapr, mrc.header.maps = 3, 2, 1
    assert np.array_equal(read_volume(path).data, zyx)


def test_missing_file(tmp_path):
    with pytest.raises(InputError, match="file not found"):
        read_volume(str(tmp_path / "nope.mrc"))


def test_not_an_mrc(tmp_path):
    path = tmp_path / "text.mrc"
    path.write_text("this is not a map\n" * 100)
    with pytest.raises(InputError, match=r"not an? (readable )?MRC"):
        read_volume(str(path))


def test_not_3d(tmp_path):
    path = _write(tmp_path / "image.mrc", np.ones((16, 16)))
    with pytest.raises(InputError, match="not a 3-D volume"):
        read_volume(path)


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_nan_inf(tmp_path, bad):
    data = np.zeros((8, 8, 8), np.float32)
    data[3, 4, 5] = bad
    with pytest.raises(InputError, match="NaN or Inf"):
        read_volume(_write(tmp_path / "bad.mrc", data))


def test_zero_voxel_size(tmp_path):
    with pytest.raises(InputError, match="no voxel size"):
        read_volume(_write(tmp_path / "v0.mrc", np.ones((8, 8, 8)), voxel_size=0.0))


def test_anisotropic_voxels(tmp_path):
    with pytest.raises(InputError, match="anisotropic"):
        read_volume(_write(tmp_path / "aniso.mrc", np.ones((8, 8, 8)), voxel_size=(1, 1, 1.5)))


def _ref(tmp_path, shape=(10, 12, 14), voxel=1.2):
    return read_volume(_write(tmp_path / "ref.mrc", np.ones(shape), voxel_size=voxel))


def test_mask_shape_mismatch(tmp_path):
    ref = _ref(tmp_path)
    path = _write(tmp_path / "mask.mrc", np.ones((10, 12, 13)), voxel_size=1.2)
    with pytest.raises(InputError, match=r"mask .* has shape \(10, 12, 13\)"):
        read_mask(path, ref)


def test_mask_voxel_size_mismatch(tmp_path):
    ref = _ref(tmp_path)
    path = _write(tmp_path / "mask.mrc", np.ones((10, 12, 14)), voxel_size=1.0)
    with pytest.raises(InputError, match="voxel size 1.0000 Å differs"):
        read_mask(path, ref)


def test_empty_mask(tmp_path):
    ref = _ref(tmp_path)
    path = _write(tmp_path / "mask.mrc", np.zeros((10, 12, 14)), voxel_size=1.2)
    with pytest.raises(InputError, match="empty"):
        read_mask(path, ref)


def test_non_binary_mask_warns_and_thresholds(tmp_path, caplog):
    ref = _ref(tmp_path)
    values = np.random.default_rng(1).uniform(0, 1, (10, 12, 14)).astype(np.float32)
    path = _write(tmp_path / "soft.mrc", values, voxel_size=1.2)
    with caplog.at_level(logging.WARNING):
        mask = read_mask(path, ref)
    assert "not binary" in caplog.text
    assert mask.dtype == bool and np.array_equal(mask, values > 0.5)


def test_binary_mask_is_silent(caplog):
    values = np.zeros((5, 5, 5), np.float32)
    values[1:3, 1:3, 1:3] = 1
    with caplog.at_level(logging.WARNING):
        assert check_mask(values).sum() == 8
    assert caplog.text == ""


def test_like_keeps_grid():
    vol = Volume(np.zeros((4, 5, 6), np.float32), 1.3, (1.0, 2.0, 3.0), (-2, -2, -3))
    other = vol.like(np.ones((4, 5, 6)))
    assert (other.sampling, other.origin, other.nstart) == (1.3, (1.0, 2.0, 3.0), (-2, -2, -3))
    assert other.data.dtype == np.float32


def test_atomic_text_write(tmp_path):
    path = atomic_write_text(str(tmp_path / "sub" / "a.txt"), "hello\n")
    assert open(path, encoding="utf-8").read() == "hello\n"
    assert os.listdir(tmp_path / "sub") == ["a.txt"]


def test_garbage_file_refused_fast(tmp_path):
    import time

    path = tmp_path / "garbage.map"
    path.write_bytes(np.random.default_rng(2).integers(0, 255, 4096, dtype=np.uint8).tobytes())
    t0 = time.perf_counter()
    with pytest.raises(InputError, match="not an MRC"):
        read_volume(str(path))
    assert time.perf_counter() - t0 < 1.0


def test_old_header_without_map_id_is_read(tmp_path):
    data = np.arange(4 * 5 * 6, dtype=np.float32).reshape(4, 5, 6)
    path = _write(tmp_path / "old.mrc", data, voxel_size=2.0)
    raw = bytearray(open(path, "rb").read())
    raw[208:212] = b"\0\0\0\0"  # pre-2000 CCP4/MRC files have no 'MAP ' identifier
    open(path, "wb").write(bytes(raw))
    vol = read_volume(path)
    assert vol.sampling == 2.0 and np.array_equal(vol.data, data)


def test_failed_write_leaves_nothing(tmp_path):
    target = tmp_path / "out.mrc"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError):
        with atomic_path(str(target), ".mrc") as tmp:
            open(tmp, "wb").write(b"half")
            raise RuntimeError("disk full")
    assert target.read_bytes() == b"old" and os.listdir(tmp_path) == ["out.mrc"]
    bad_grid = Volume(np.zeros((4, 4, 4), np.float32), 1.0, origin=(0.0, 0.0))  # fails mid-write
    with pytest.raises(ValueError):
        write_volume(str(tmp_path / "new.mrc"), bad_grid)
    assert os.listdir(tmp_path) == ["out.mrc"]


def test_truncated_file_says_truncated(tmp_path, real_map):
    full = write_volume(str(tmp_path / "full.mrc"), read_volume(real_map))
    raw = open(full, "rb").read()
    (tmp_path / "cut.mrc").write_bytes(raw[: len(raw) // 2])
    with pytest.raises(InputError, match=r"cut.mrc is truncated: 2000512 bytes, its header "
                                         r"announces 4001024 \(100 x 100 x 100 voxels\)"):
        read_volume(str(tmp_path / "cut.mrc"))
    import gzip

    (tmp_path / "cut.mrc.gz").write_bytes(gzip.compress(raw)[:300_000])
    with pytest.raises(InputError, match="cut.mrc.gz is truncated"):
        read_volume(str(tmp_path / "cut.mrc.gz"))
    (tmp_path / "empty.mrc").write_bytes(b"")
    with pytest.raises(InputError, match=r"not an MRC/CCP4 file \(empty\)"):
        read_volume(str(tmp_path / "empty.mrc"))


def test_output_set_is_all_or_nothing(tmp_path):
    from deepres_plugin.backend.volume import OutputSet

    vol = Volume(np.ones((4, 4, 4), np.float32), 1.0)
    (tmp_path / "b.txt").write_text("old")
    with pytest.raises(RuntimeError):
        with OutputSet():
            write_volume(str(tmp_path / "a.mrc"), vol)
            atomic_write_text(str(tmp_path / "b.txt"), "new")
            assert len(os.listdir(tmp_path)) == 3  # two temporary files next to b.txt
            raise RuntimeError("interrupted")
    assert os.listdir(tmp_path) == ["b.txt"] and (tmp_path / "b.txt").read_text() == "old"
    with OutputSet() as outer:
        write_volume(str(tmp_path / "a.mrc"), vol)
        with OutputSet():  # joins the outer set: nothing appears before the outer one ends
            atomic_write_text(str(tmp_path / "b.txt"), "new")
        assert not (tmp_path / "a.mrc").exists() and (tmp_path / "b.txt").read_text() == "old"
    assert outer.paths == [str(tmp_path / "a.mrc"), str(tmp_path / "b.txt")]
    assert sorted(os.listdir(tmp_path)) == ["a.mrc", "b.txt"]
    assert (tmp_path / "b.txt").read_text() == "new"


def test_full_disk_error_names_the_real_file(tmp_path):
    import resource

    from deepres_plugin.backend.volume import OutputSet

    vol = Volume(np.ones((64, 64, 64), np.float32), 1.0)  # 1 MB
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    with pytest.raises(OSError) as err:
        with OutputSet():
            atomic_write_text(str(tmp_path / "small.json"), "{}")
            resource.setrlimit(resource.RLIMIT_FSIZE, (100_000, hard))  # as if the disk filled
            try:
                write_volume(str(tmp_path / "big.mrc"), vol)
            finally:
                resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
    assert err.value.filename == str(tmp_path / "big.mrc") and err.value.strerror
    assert os.listdir(tmp_path) == []


def test_a_signal_waits_for_the_end_of_a_commit():
    import signal
    import time

    from deepres_plugin.backend.volume import deferred_signals

    done = []
    before = signal.signal(signal.SIGINT, signal.default_int_handler)  # whatever ran before
    with pytest.raises(KeyboardInterrupt):
        with deferred_signals():
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.05)  # Python would have raised here
            done.append("renamed")
    assert done == ["renamed"]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    signal.signal(signal.SIGINT, before)
