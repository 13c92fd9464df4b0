"""UI responsiveness benchmark: event-loop latency of the main window while the worker renders.

    python -m triface_studio.qt.bench_ui [--seconds 5] [--resolution 128] [--tier relief|bundled]

``--tier bundled --resolution 512`` is the orbit view as a user drags it: rasterised 512 px
previews; ``frames_per_second_shown`` counts the frames the viewport showed, ``viewport_fps``
is what its label said at the end.

A 10 ms QTimer measures how late each tick fires (the event loop's latency) while the orbit
viewport keeps asking the worker for renders (as a user dragging the yaw slider would).
Prints one JSON document: latency p50/p95/max in ms, renders done, target (< 50 ms).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time


def _relief_pipeline():
    import numpy as np

    from triface_studio.core.semantics import HAIR, SKIN
    from triface_studio.pipeline import EditPipeline
    from triface_studio.pipeline.relief import AlignedAnalyzer, ReliefTier

    def parser(crop):
        yy, xx = np.mgrid[0:512, 0:512]
        lab = np.zeros((512, 512), np.uint8)
        face = ((xx - 256) / 150.0) ** 2 + ((yy - 290) / 190.0) ** 2 < 1
        lab[face] = SKIN
        lab[(yy < 200) & ~face & (abs(xx - 256) < 200)] = HAIR
        return lab

    return EditPipeline(tier=ReliefTier(resolution=128), analyzer=AlignedAnalyzer(parser=parser))


def measure(seconds: float = 5.0, resolution: int = 128, tier: str = "relief", interval_ms: int = 10) -> dict:
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtCore import QElapsedTimer, QTimer
    from PySide6.QtWidgets import QApplication

    from triface_studio.resources import sample_images

    from .main_window import MainWindow, default_pipeline_factory

    app = QApplication.instance() or QApplication(sys.argv[:1])
    factory = _relief_pipeline if tier == "relief" else default_pipeline_factory(tier)
    win = MainWindow(factory, orbit_resolution=resolution, preview_resolution=resolution)
    win.show()
    try:
        win.open_identity(str(sample_images()[0]))
        t0 = time.perf_counter()
        while win.orbit_asset is None and time.perf_counter() - t0 < 600:
            app.processEvents()
            if win.last_error:
                raise RuntimeError(win.last_error)
            time.sleep(0.005)
        if win.orbit_asset is None:
            raise RuntimeError("the identity was not encoded in time")
        lat: list[float] = []
        clock = QElapsedTimer()
        clock.start()
        last = [clock.nsecsElapsed()]

        def tick():
            now = clock.nsecsElapsed()
            lat.append(max(0.0, (now - last[0]) / 1e6 - interval_ms))
            last[0] = now

        timer = QTimer(interval=interval_ms, timeout=tick)
        yaw = [0.0]

        def drag():  # a user dragging the slider: a new pose every 16 ms
            yaw[0] = (yaw[0] + 1.5) % 60
            win.yaw.setValue(yaw[0] - 30)

        mover = QTimer(interval=16, timeout=drag)
        n0 = len(win.renders_received)
        win.yaw._slider.setSliderDown(True)     # dragging: throttled low-resolution previews
        timer.start()
        mover.start()
        end = time.perf_counter() + seconds
        while time.perf_counter() < end:
            app.processEvents()
            time.sleep(0.001)
        timer.stop()
        mover.stop()
        win.yaw._slider.setSliderDown(False)
        lat.sort()
        q = lambda f: lat[min(len(lat) - 1, int(f * len(lat)))] if lat else float("nan")  # noqa: E731
        return {"stage": "ui-latency", "tier": tier, "resolution": resolution, "seconds": seconds,
                "ticks": len(lat), "latency_ms_p50": round(q(0.5), 2), "latency_ms_p95": round(q(0.95), 2),
                "latency_ms_max": round(lat[-1] if lat else float("nan"), 2),
                "renders_shown": len(win.renders_received) - n0, "stale_dropped": win.stale_dropped,
                "frames_per_second_shown": round((len(win.renders_received) - n0) / seconds, 1),
                "viewport_fps": round(win.orbit_panel.fps, 1),
                "target_ms": 50, "ok": bool(lat) and q(0.95) < 50}
    finally:
        from PySide6.QtWidgets import QMessageBox

        # nothing to save: closing must not wait for an answer to "save the changes?"
        win.ask = lambda *a: QMessageBox.StandardButton.Discard
        win.close()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m triface_studio.qt.bench_ui")
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--resolution", type=int, default=128)
    ap.add_argument("--tier", default="relief", help="relief (deterministic stand-in), bundled or neural")
    a = ap.parse_args(argv)
    print(json.dumps(measure(a.seconds, a.resolution, a.tier)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
