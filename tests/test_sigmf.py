# SPDX-License-Identifier: GPL-3.0-or-later
"""infercom.sigmf_io (no GNU Radio): metadata passes the SigMF validator, annotations carry the frame's burst
span and header, ci16_le is scaled by 1/32768, and bad recordings (missing data file, unknown datatype, wrong
sample rate or samples/symbol, truncated data) are rejected with clear errors.  The record -> replay round trip
through the receiver flowgraph is in gr-infercom/python/infercom/qa_apps.py."""

import json

import numpy as np
import pytest

pytest.importorskip("sigmf")

from infercom.frame import FrameFormat  # noqa: E402
from infercom.header import FrameHeader  # noqa: E402
from infercom.sigmf_io import (  # noqa: E402
    RecordingError,
    build_meta,
    frame_annotation,
    open_recording,
    read_samples,
    recording_paths,
    to_ci16,
    write_meta,
)


def _frame_rec(**over):
    h = FrameHeader(tx_id=3, image_id=7, attempt=1, frame_idx=2, bh=3, bw=3, planes=8, channels=3,
                    profile="importance", design_snr_db=4, key_id=0, height=48, width=64, frame_len_log2=10)
    from dataclasses import asdict

    return {**asdict(h), "sample_index": 12345, "snr_db": 7.5, "cfo": 1e-3, "h_re": 0.9, "h_im": 0.1, **over}, h


def _write(tmp_path, x, datatype="cf32_le", **kw):
    meta_path, data_path = recording_paths(tmp_path / "rec.sigmf-meta")
    (to_ci16(x) if datatype == "ci16_le" else np.asarray(x, np.complex64)).tofile(data_path)
    write_meta(meta_path, build_meta(datatype=datatype, **{"sample_rate": 2e6, "sps": 2, **kw}))
    return meta_path, data_path


def test_meta_with_annotations_passes_the_sigmf_validator(tmp_path):
    import sigmf

    rec, h = _frame_rec()
    ann = frame_annotation(rec, sps=2)
    assert ann["core:sample_start"] == 12345
    assert ann["core:sample_count"] == FrameFormat(sps=2).burst_len_samples(h)
    assert ann["infercom:frame_idx"] == 2 and ann["infercom:snr_db"] == 7.5 and ann["infercom:cfo"] == 1e-3
    assert ann["core:label"] == "tx3 img7 f2 a1"
    later = frame_annotation(_frame_rec(sample_index=50000)[0], sps=2)
    meta_path, data_path = _write(tmp_path, np.zeros(80000, np.complex64), frequency=2.45e9,
                                  hw="b210 (UHD type=b200)", gains={"rx_gain_db": 30},
                                  annotations=[later, ann])          # written sorted by sample_start
    f = sigmf.sigmffile.fromfile(str(meta_path))
    f.validate()
    g = f.get_global_info()
    assert g["core:sample_rate"] == 2e6 and g["core:datatype"] == "cf32_le"
    assert g["core:recorder"].startswith("gr-infercom ") and g["infercom:rx_gain_db"] == 30.0
    assert f.get_captures()[0]["core:frequency"] == 2.45e9 and "core:datetime" in f.get_captures()[0]
    assert [a["core:sample_start"] for a in f.get_annotations()] == [12345, 50000]
    assert f.read_samples().size == 80000
    assert not list(tmp_path.glob("*.tmp"))                          # the atomic write left no temporary
    # frequency unknown (ZeroMQ IQ without --center-freq): left out, still valid
    meta_path, _ = _write(tmp_path, np.zeros(10, np.complex64), sample_rate=None)
    meta = json.loads(meta_path.read_text())
    assert "core:frequency" not in meta["captures"][0] and "core:sample_rate" not in meta["global"]
    sigmf.sigmffile.fromfile(str(meta_path)).validate()


def test_ci16_le_is_scaled_by_1_over_32768(tmp_path):
    x = (np.random.default_rng(0).standard_normal(1000) * 0.2
         + 1j * np.random.default_rng(1).standard_normal(1000) * 0.2).astype(np.complex64)
    meta_path, data_path = _write(tmp_path, x, datatype="ci16_le")
    assert data_path.stat().st_size == 4 * x.size
    rec = open_recording(data_path)                                  # the .sigmf-data path works too
    assert rec.datatype == "ci16_le" and rec.n_samples == x.size and rec.sps == 2
    y = read_samples(rec)
    assert y.dtype == np.complex64 and np.max(np.abs(y - x)) <= 1.0 / 32768


def test_bad_recordings_give_clear_errors(tmp_path):
    meta_path, data_path = _write(tmp_path, np.zeros(100, np.complex64))
    assert open_recording(meta_path, sps=2, sample_rate=2e6).n_samples == 100
    with pytest.raises(RecordingError, match="recorded at 2e.06 S/s.*1e.06 S/s"):
        open_recording(meta_path, sample_rate=1e6)
    with pytest.raises(RecordingError, match="2 samples/symbol.*set to 4"):
        open_recording(meta_path, sps=4)
    data_path.write_bytes(b"\0" * 801)
    with pytest.raises(RecordingError, match="not a whole number of cf32_le samples"):
        open_recording(meta_path)
    data_path.unlink()
    with pytest.raises(RecordingError, match="data file not found"):
        open_recording(meta_path)
    meta = json.loads(meta_path.read_text())
    meta["global"]["core:datatype"] = "cu8"
    meta_path.write_text(json.dumps(meta))
    with pytest.raises(RecordingError, match="datatype 'cu8' not supported"):
        open_recording(meta_path)
    with pytest.raises(RecordingError, match="metadata file not found"):
        open_recording(tmp_path / "nothing.sigmf-data")
    meta_path.write_text("{not json")
    with pytest.raises(RecordingError, match="not a readable SigMF"):
        open_recording(meta_path)
    meta_path.write_text(json.dumps({"global": {"core:datatype": "cf32_le"}, "captures": [], "annotations": []}))
    with pytest.raises(RecordingError, match="invalid SigMF metadata"):               # no core:version
        open_recording(meta_path)
    with pytest.raises(RecordingError, match="datatype"):
        build_meta(sample_rate=1e6, sps=2, datatype="ri8")
