"""``edgeflow export triton ARTIFACT --repo DIR``: serve an artifact with Triton Inference Server."""

from __future__ import annotations

NAME = "export"
HELP = "export an artifact for a serving system (Triton Inference Server model repository)"
DESCRIPTION = """\
Write a Triton Inference Server model repository for an artifact:

  <repo>/<name>/config.pbtxt            platform, input/output names, dims (-1 = dynamic), types
  <repo>/<name>/1/model.plan            the TensorRT engine (platform tensorrt_plan), or
  <repo>/<name>/1/model.onnx            the portable ONNX graph (platform onnxruntime_onnx)
  <repo>/<name>/libedgeflow_plugins.so  the Correlation plugin an engine needs
  <repo>/README.txt                     how to start tritonserver with the plugin loaded

An earlier export of the same name is replaced (written beside it, then renamed into place); a
<repo>/<name> folder holding anything else, or a README.txt edgeflow did not write, is refused
unless --force.

--platform auto uses the engine when the artifact has one. Engines only run on the TensorRT version
and GPU model they were built on: build the engine where the server runs
(`edgeflow convert ARTIFACT --target tensorrt`) or export the ONNX graph.

examples:
  edgeflow export triton pwc-lite-fp32 --repo models/
  edgeflow export triton pwc-lite-fp16 --repo models/ --name flow --instances 2
  edgeflow export triton pwc-lite-fp16 --repo models/ --platform onnxruntime --kind cpu
"""


def add_arguments(p) -> None:
    p.add_argument("format", choices=["triton"], help="what to export for (triton)")
    p.add_argument("artifact", help="artifact directory (from `edgeflow convert`)")
    p.add_argument("--repo", required=True, metavar="DIR", help="model repository directory (created if missing)")
    p.add_argument("--name", help="model name in the repository (default: the artifact's model name)")
    p.add_argument("--max-batch", type=int, default=0, metavar="N",
                   help="Triton max_batch_size (default 0: no batching; >0 needs a dynamic batch dim)")
    p.add_argument("--platform", choices=["auto", "tensorrt", "onnxruntime"], default="auto",
                   help="auto: the TensorRT engine when the artifact has one, else ONNX")
    p.add_argument("--instances", type=int, default=1, metavar="N", help="model instances (instance_group count)")
    p.add_argument("--kind", choices=["gpu", "cpu"], default="gpu", help="instance kind (default gpu)")
    p.add_argument("--plugin", metavar="PATH", help="plugin library to ship (default: the one edgeflow finds)")
    p.add_argument("--force", action="store_true",
                   help="replace <repo>/<name> (and README.txt) even when they hold files edgeflow did not write")


def run(args) -> int:
    from edgeflow.triton import export_triton

    result = export_triton(args.artifact, args.repo, name=args.name, max_batch=args.max_batch, instances=args.instances,
                           platform=args.platform, kind=args.kind, plugin_library=args.plugin,
                           force=args.force)
    print(f"wrote {result.model_dir} ({result.platform})")
    for path in result.files:
        print(f"  {path}")
    for note in result.notes:
        print(f"note: {note}")
    print(f"start the server as described in {result.repo / 'README.txt'}")
    return 0
