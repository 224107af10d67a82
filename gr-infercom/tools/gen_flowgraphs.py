#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-3.0-or-later
"""Write the flowgraphs in grc/ (loopback GUI + headless, TX/RX over ZeroMQ IQ, TX/RX over UHD).

The .grc files are the product (open them in GNU Radio Companion); this script keeps them consistent with
each other.  Parameters left out take the block's default when GRC loads the file.
The transmitters and receivers are the ``infercom_tx`` / ``infercom_rx`` hier blocks (gnuradio.infercom.tx / rx),
the same blocks the apps (``infercom tx|rx|loopback``) build from.
Run: python gr-infercom/tools/gen_flowgraphs.py [--out DIR]  (then `grcc` them, as tests/test_grc.py does; it
also regenerates them into a temporary folder and requires them equal to the committed grc/*.grc)
"""

from __future__ import annotations

import sys
from pathlib import Path

import yaml

OUT = Path(__file__).resolve().parents[2] / "grc"
#: output buffer (items) of the PDU -> tagged-stream converters: a whole frame's soft symbols (up to 2**16) must
#: fit, or GNU Radio stops the block with "Buffer too small for min_noutput_items"
P2S_BUFFER = "2 * 2 ** 16"


class Graph:
    def __init__(self, gid: str, title: str, gui: bool, description: str):
        self.gid, self.title, self.gui, self.description = gid, title, gui, description
        self.blocks: list[dict] = []
        self.connections: list[list[str]] = []
        self._x = 16

    def block(self, block_name, bid, pos=None, state="enabled", **params):
        if pos is None:
            pos = (self._x, 200)
            self._x += 200
        self.blocks.append({"name": block_name, "id": bid,
                            "parameters": {k: str(v) for k, v in params.items()},
                            "states": {"coordinate": list(pos), "rotation": 0, "state": state}})
        return block_name

    def var(self, name, value, pos):
        return self.block(name, "variable", pos, value=value)

    def param(self, name, label, dtype, value, pos, short=""):
        return self.block(name, "parameter", pos, label=label, type=dtype, value=value, short_id=short,
                          hide="none")

    def link(self, a, pa, b, pb):
        self.connections.append([a, str(pa), b, str(pb)])

    def chain(self, *names):
        for a, b in zip(names, names[1:]):
            self.link(a, 0, b, 0)

    def write(self, out_dir: Path = OUT):
        doc = {
            "options": {
                "parameters": {
                    "author": "gr-infercom", "category": "[GRC Hier Blocks]", "description": self.description,
                    "generate_options": "qt_gui" if self.gui else "no_gui", "id": self.gid,
                    "output_language": "python", "run": "True", "run_options": "prompt" if self.gui else "run",
                    "title": self.title, "window_size": "(1280, 1024)", "copyright": "GPL-3.0-or-later",
                },
                "states": {"coordinate": [8, 8], "rotation": 0, "state": "enabled"},
            },
            "blocks": self.blocks,
            "connections": self.connections,
            "metadata": {"file_format": 1, "grc_version": "3.10.5.1"},
        }
        path = Path(out_dir) / f"{self.gid}.grc"
        path.write_text(yaml.safe_dump(doc, sort_keys=False, width=120))
        return path


# ---------------------------------------------------------------------------------------------------------
def tx_section(g: Graph, continuous: bool, feedback: bool, y0: int = 320):
    """The ``infercom_tx`` hier block (tx_controller -> frame_modulator, RRC-shaped at sps samples/symbol);
    returns its name (stream output 0, message input ``feedback``)."""
    g.block("tx", "infercom_tx", (16, y0), images="images", tx_id="tx_id", bh="bh", bw="bh",
            design_snr_db="design_snr_db", frame_len_log2="frame_len_log2",
            use_feedback="True" if feedback else "False", timeout_s="timeout_s", sps="sps", beta="beta",
            span="span", continuous=str(continuous), gap_min="gap_min", gap_max="gap_max", seed="seed",
            tail_symbols="0")
    return "tx"


def rx_section(g: Graph, src: str, y0: int = 560, max_log2: str = "15", server: bool = True):
    """The ``infercom_rx`` hier block (matched filter (FFT, as in the apps) -> burst_sync -> frame_demod ->
    chase_combiner [-> server_link]) fed by ``src``; returns its name (message outputs ``frames``, ``combined``,
    ``feedback``)."""
    g.block("rx", "infercom_rx", (260, y0), sps="sps", beta="beta", span="span", max_frame_len_log2=max_log2,
            max_frames="4096", timeout_s="60.0", server_addr="server" if server else "''", feedback_addr="''",
            tx_ids="[]", hwm="1000")
    g.link(src, 0, "rx", 0)
    return "rx"


def soft_file(g: Graph, rx: str, pos=(1000, 560)):
    """The receiver's Chase-combined soft symbols, frame after frame, to the file ``soft_out``."""
    g.block("rx_p2s", "pdu_pdu_to_tagged_stream", pos, type="complex", tag="packet_len", minoutbuf=P2S_BUFFER)
    g.block("rx_file", "blocks_file_sink", (pos[0] + 240, pos[1]), type="complex", file="soft_out",
            unbuffered="False", append="False")
    g.link(rx, "combined", "rx_p2s", "pdus")
    g.link("rx_p2s", 0, "rx_file", 0)


def common_vars(g: Graph, x0=200, sps="2"):
    g.var("sps", sps, (x0, 8))
    g.var("beta", "0.35", (x0 + 100, 8))
    g.var("span", "8", (x0 + 200, 8))
    g.var("rrc", "infercom.rrc_taps(sps, beta, span)", (x0 + 300, 8))
    g.block("imports", "import", (x0 + 450, 8), imports="from gnuradio import infercom")


def tx_params(g: Graph, y=100):
    g.param("images", "Images (folder or files)", "str", "", (16, y), "i")
    g.param("tx_id", "Transmitter id", "intx", "0", (200, y))
    g.param("bh", "Block size (px)", "intx", "3", (360, y))
    g.param("design_snr_db", "Design Es/N0 (dB)", "intx", "-4", (520, y))
    g.param("frame_len_log2", "log2 payload symbols per frame", "intx", "15", (680, y))
    g.param("timeout_s", "Feedback timeout (s)", "eng_float", "5.0", (880, y))
    g.param("gap_min", "Min gap (symbols)", "intx", "64", (1040, y))
    g.param("gap_max", "Max gap (symbols)", "intx", "1024", (1200, y))
    g.param("seed", "Seed", "intx", "0", (1360, y))


def channel(g: Graph, src: str, y0: int, gui: bool):
    """Block fading (bypassed unless enabled), CFO (``cfo`` plus the ``ppm`` carrier offset at ``center_freq``),
    Wiener phase noise (``phase_noise_hz`` linewidth), fractional timing and the ``ppm`` sample-clock offset
    (resampling ratio ``1 + ppm*1e-6``), AWGN at Es/N0 = snr_db, receiver IQ imbalance (``iq_gain_db``,
    ``iq_phase_deg``) and DC offset (``dc_db`` relative to the burst's sample power ``1/sps``, at
    ``dc_phase_deg``): the models of infercom.channel, as ``infercom loopback`` builds them."""
    g.block("ch_fading", "infercom_block_fading", (880, y0), mode='"frame"', snr_db="snr_db", seed="seed",
            state="bypassed")
    g.block("ch_cfo", "blocks_rotator_cc", (1080, y0),
            phase_inc="2 * math.pi * (cfo + ppm * 1e-6 * center_freq / samp_rate)", tag_inc_update="False")
    g.block("ch_pn_noise", "analog_noise_source_x", (880, y0 + 240), type="float", noise_type="analog.GR_GAUSSIAN",
            amp="math.sqrt(2 * math.pi * phase_noise_hz / samp_rate)", seed="seed + 3")
    g.block("ch_pn_acc", "iir_filter_xxx", (1080, y0 + 240), type="ffd", fftaps="[1.0]", fbtaps="[1.0, 1.0]",
            oldstyle="True")
    g.block("ch_pn_mod", "analog_phase_modulator_fc", (1280, y0 + 240), sensitivity="1.0")
    g.block("ch_pn", "blocks_multiply_xx", (1280, y0 + 120), type="complex", num_inputs="2")
    g.block("ch_timing", "mmse_resampler_xx", (1480, y0), type="complex", phase_shift="timing",
            resamp_ratio="1.0 + ppm * 1e-6")
    g.block("ch_noise", "analog_noise_source_x", (1480, y0 + 120), type="complex", noise_type="analog.GR_GAUSSIAN",
            amp="10 ** (-snr_db / 20.0)", seed="seed + 1")
    g.block("ch_add", "blocks_add_xx", (1680, y0), type="complex", num_inputs="2")
    g.block("ch_iqbal", "channels_iqbal_gen", (1680, y0 + 120), mag="iq_gain_db", phase="iq_phase_deg", mode="1")
    g.block("ch_dc", "blocks_add_const_vxx", (1880, y0), type="complex",
            const="10 ** (dc_db / 20.0) / math.sqrt(sps) * complex(math.cos(math.radians(dc_phase_deg)), "
                  "math.sin(math.radians(dc_phase_deg)))")
    g.chain(src, "ch_fading", "ch_cfo")
    g.link("ch_cfo", 0, "ch_pn", 0)
    g.chain("ch_pn_noise", "ch_pn_acc", "ch_pn_mod")
    g.link("ch_pn_mod", 0, "ch_pn", 1)
    g.link("ch_pn", 0, "ch_timing", 0)
    g.link("ch_timing", 0, "ch_add", 0)
    g.link("ch_noise", 0, "ch_add", 1)
    g.chain("ch_add", "ch_iqbal", "ch_dc")
    last = "ch_dc"
    if gui:
        g.block("ch_throttle", "blocks_throttle", (1880, y0 + 120), type="complex", samples_per_second="samp_rate",
                ignoretag="True")
        g.chain("ch_dc", "ch_throttle")
        last = "ch_throttle"
    return last


def impairment_params(g: Graph, y: int = 280):
    """The radio impairments of the loopbacks (docs/phy.md section 1, "Radio impairments")."""
    g.param("ppm", "TX-RX reference offset (ppm): CFO and SFO", "eng_float", "0.0", (16, y))
    g.param("center_freq", "Centre frequency (Hz) for ppm", "eng_float", "2.45e9", (200, y))
    g.param("dc_db", "DC offset (dB re signal; -200 = none)", "eng_float", "-200.0", (400, y))
    g.param("dc_phase_deg", "DC offset angle (deg)", "eng_float", "45.0", (600, y))
    g.param("iq_gain_db", "RX IQ gain imbalance (dB)", "eng_float", "0.0", (800, y))
    g.param("iq_phase_deg", "RX IQ phase imbalance (deg)", "eng_float", "0.0", (1000, y))
    g.param("phase_noise_hz", "Phase noise linewidth (Hz)", "eng_float", "0.0", (1200, y))
    g.block("import_math", "import", (850, 8), imports="import math")


def loopback(gui: bool) -> Graph:
    gid = "loopback" if gui else "loopback_headless"
    g = Graph(gid, "InferCom loopback" + ("" if gui else " (headless)"), gui,
              "TX -> block fading -> CFO -> phase noise -> timing / sample-clock offset -> AWGN -> IQ imbalance -> DC "
              "-> RX -> server over ZeroMQ"
              + (" with Qt GUI sinks" if gui else ""))
    common_vars(g)
    tx_params(g)
    g.param("snr_db", "Es/N0 (dB)", "eng_float", "10.0", (16, 200), "s") if not gui else \
        g.block("snr_db", "variable_qtgui_range", (16, 200), label="Es/N0 (dB)", value="10", start="-12",
                stop="30", step="0.5")
    g.param("cfo", "CFO (cycles/sample)", "eng_float", "0.001", (200, 200))
    g.param("timing", "Timing offset (samples)", "eng_float", "0.37", (400, 200))
    g.param("server", "Server address", "str", "tcp://127.0.0.1:5555", (600, 200))
    if gui:
        g.var("samp_rate", "2e6", (800, 8))
    else:
        g.param("soft_out", "Combined soft symbols file", "str", "/dev/null", (800, 200))
        g.param("samp_rate", "Sample rate (S/s) for ppm and phase noise", "eng_float", "2e6", (1000, 200))
    impairment_params(g)
    tx = tx_section(g, continuous=True, feedback=True, y0=400)
    ch = channel(g, tx, 400, gui)
    rx = rx_section(g, ch, y0=800, max_log2="frame_len_log2")
    g.link(rx, "feedback", tx, "feedback")
    if gui:
        g.block("rx_p2s", "pdu_pdu_to_tagged_stream", (1000, 800), type="complex", tag="packet_len",
                minoutbuf=P2S_BUFFER)
        g.link(rx, "combined", "rx_p2s", "pdus")
        g.block("gui_const", "qtgui_const_sink_x", (1240, 760), type="complex", name='"Soft symbols (Chase)"',
                size="4096", autoscale="False", ymin="-2", ymax="2", xmin="-2", xmax="2", nconnections="1")
        g.block("gui_spec", "qtgui_freq_sink_x", (2100, 400), type="complex", name='"RX spectrum"',
                fftsize="1024", bw="samp_rate", nconnections="1")
        g.block("gui_soft", "qtgui_time_sink_x", (1240, 920), type="complex", name='"Soft symbols (I/Q)"',
                size="2048", srate="1", nconnections="1", autoscale="True")
        g.link("rx_p2s", 0, "gui_const", 0)
        g.link(ch, 0, "gui_spec", 0)
        g.block("rx_p2s_raw", "pdu_pdu_to_tagged_stream", (1000, 940), type="complex", tag="packet_len",
                minoutbuf=P2S_BUFFER)
        g.link(rx, "frames", "rx_p2s_raw", "pdus")
        g.link("rx_p2s_raw", 0, "gui_soft", 0)
    else:
        soft_file(g, rx, pos=(1000, 800))
    return g


def tx_zmq() -> Graph:
    g = Graph("tx_zmq", "InferCom TX over ZeroMQ IQ", False,
              "TX process: frames -> RRC-shaped bursts -> ZeroMQ PUSH of IQ samples (a radio stand-in); feedback from the server")
    common_vars(g)
    tx_params(g)
    g.param("iq_addr", "IQ address (bind)", "str", "tcp://127.0.0.1:5600", (16, 200))
    g.param("feedback_addr", "Server feedback address", "str", "tcp://127.0.0.1:5556", (240, 200))
    g.param("samp_rate", "Sample rate (S/s)", "eng_float", "2e6", (480, 200))
    tx = tx_section(g, continuous=True, feedback=True)
    g.block("tx_throttle", "blocks_throttle", (880, 320), type="complex", samples_per_second="samp_rate",
            ignoretag="True")
    g.block("iq_out", "zeromq_push_sink", (1080, 320), type="complex", address="iq_addr", timeout="100",
            pass_tags="False", hwm="-1")
    g.block("fb_link", "infercom_server_link", (16, 480), server_addr="''", feedback_addr="feedback_addr",
            tx_ids="[tx_id]", hwm="1000")
    g.link("fb_link", "feedback", tx, "feedback")
    g.chain(tx, "tx_throttle", "iq_out")
    return g


def rx_zmq() -> Graph:
    g = Graph("rx_zmq", "InferCom RX over ZeroMQ IQ", False,
              "RX process: ZeroMQ PULL of IQ samples -> AWGN/CFO channel model -> burst sync -> demod -> server")
    common_vars(g)
    g.param("iq_addr", "IQ address (connect)", "str", "tcp://127.0.0.1:5600", (16, 100))
    g.param("server", "Server address", "str", "tcp://127.0.0.1:5555", (240, 100))
    g.param("snr_db", "Es/N0 (dB) of the added noise", "eng_float", "100", (480, 100))
    g.param("cfo", "CFO (cycles/sample)", "eng_float", "0.0", (700, 100))
    g.param("soft_out", "Combined soft symbols file", "str", "/dev/null", (900, 100))
    g.block("iq_in", "zeromq_pull_source", (16, 320), type="complex", address="iq_addr", timeout="100",
            pass_tags="False", hwm="-1")
    g.block("ch_model", "channels_channel_model", (240, 320), noise_voltage="10 ** (-snr_db / 20.0)",
            freq_offset="cfo", epsilon="1.0", taps="[1.0]", seed="0", block_tags="False")
    g.chain("iq_in", "ch_model")
    rx = rx_section(g, "ch_model")
    soft_file(g, rx)
    return g


def hw_vars(g: Graph, y=100):
    g.param("hw_config", "Hardware config (hw_configs/NAME.yaml)", "str", "b210", (16, y), "c")
    g.var("hw", "infercom.load_hw_config(hw_config)", (300, y))
    g.var("samp_rate", "hw['sample_rate']", (460, y))


def uhd_opts(prefix: str, rx: bool) -> dict:
    p = {"type": "fc32", "otw": "", "dev_addr": "hw['device_args']", "dev_args": "''", "stream_args": "''",
         "sync": "pc_clock", "clock_rate": "hw.get('master_clock_rate', 0.0)", "num_mboards": "1",
         "clock_source0": "hw['clock_source']", "time_source0": "hw['time_source']", "nchan": "1",
         "samp_rate": "samp_rate", "center_freq0": "hw['center_freq']",
         "gain0": "hw['rx_gain']" if rx else "hw['tx_gain']", "gain_type0": "default",
         "ant0": "hw['rx_antenna']" if rx else "hw['tx_antenna']", "bw0": "hw['bandwidth']"}
    if not rx:
        p["len_tag_name"] = "''"
    return p


def tx_uhd() -> Graph:
    g = Graph("tx_uhd", "InferCom TX over UHD", False,
              "TX process: frames -> RRC -> USRP bursts (tx_sob/tx_eob); feedback from the server over ZeroMQ")
    common_vars(g, sps="hw['sps']")
    hw_vars(g)
    tx_params(g, y=200)
    g.param("feedback_addr", "Server feedback address", "str", "tcp://127.0.0.1:5556", (16, 280))
    g.param("amplitude", "Baseband amplitude", "eng_float", "0.5", (260, 280))
    tx = tx_section(g, continuous=False, feedback=True, y0=400)
    g.block("tx_amp", "blocks_multiply_const_vxx", (860, 400), type="complex", const="amplitude")
    g.block("tx_usrp", "uhd_usrp_sink", (1060, 400), **uhd_opts("tx", rx=False))
    g.block("fb_link", "infercom_server_link", (16, 560), server_addr="''", feedback_addr="feedback_addr",
            tx_ids="[tx_id]", hwm="1000")
    g.link("fb_link", "feedback", tx, "feedback")
    g.chain(tx, "tx_amp", "tx_usrp")
    return g


def rx_uhd() -> Graph:
    g = Graph("rx_uhd", "InferCom RX over UHD", False,
              "RX process: USRP -> matched filter -> burst sync -> demod -> Chase / server over ZeroMQ")
    common_vars(g, sps="hw['sps']")
    hw_vars(g)
    g.param("server", "Server address", "str", "tcp://127.0.0.1:5555", (16, 200))
    g.param("soft_out", "Combined soft symbols file", "str", "/dev/null", (260, 200))
    g.block("rx_usrp", "uhd_usrp_source", (16, 400), **uhd_opts("rx", rx=True))
    rx = rx_section(g, "rx_usrp")
    soft_file(g, rx)
    return g


def main(argv: list[str] | None = None) -> int:
    import argparse

    p = argparse.ArgumentParser(description="write the flowgraphs of grc/")
    p.add_argument("--out", type=Path, default=OUT, help="folder to write them to (default: the repository's grc/)")
    args = p.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    for g in (loopback(True), loopback(False), tx_zmq(), rx_zmq(), tx_uhd(), rx_uhd()):
        print("wrote", g.write(args.out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
