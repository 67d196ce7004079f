"""The device runtime must work on a machine without torch or the toolchain (converters): load an
artifact and infer, build the CLI."""

import subprocess
import sys
import textwrap


def test_runtime_infers_with_torch_unimportable(small_artifact):
    code = textwrap.dedent(
        f"""
        import sys, importlib.abc
        class NoTorch(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in ("torch", "converters"):  # the toolchain absent too
                    raise ImportError(name + " is blocked in this test")
        sys.meta_path.insert(0, NoTorch())
        import numpy as np
        import edgeflow
        from edgeflow.synthetic import SyntheticFlowGenerator
        s = SyntheticFlowGenerator(60, 80, seed=1, augment=False).sample(0)
        m = edgeflow.load({str(small_artifact)!r})
        flow = m.infer(s.frame1, s.frame2)
        assert flow.shape == (60, 80, 2)
        import edgeflow.cli
        edgeflow.cli.build_parser()
        assert not any(k.split(".")[0] in ("torch", "converters") for k in sys.modules), "torch/converters got imported"
        print("ok")
        """
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0 and r.stdout.strip().endswith("ok"), r.stderr[-2000:]
