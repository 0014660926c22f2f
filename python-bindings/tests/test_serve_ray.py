"""bitplane-serve on Ray Serve: a local one-node cluster bound to loopback, two
replicas behind Ray Serve's HTTP proxy; the answers must equal the
single-process server's bit for bit."""

import os

import numpy as np
import pytest

# Before Ray is imported: every Ray process on the loopback address (Ray's
# single-machine mode) and no usage report.
os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
os.environ["RAY_USAGE_STATS_ENABLED"] = "0"

pytest.importorskip("fastapi", reason="bitplane-serve needs the serve extra")
ray = pytest.importorskip("ray", reason="Ray could not be installed here (the serve-ray "
                                        "extra: pip install './python-bindings[serve-ray]')")
serve = pytest.importorskip("ray.serve", reason="Ray Serve is missing (pip install 'ray[serve]')")
httpx = pytest.importorskip("httpx")

from bitplane.serve import ServeConfig, create_app  # noqa: E402
from bitplane.serve.ray_app import deployment  # noqa: E402

from conftest import gauss  # noqa: E402
from serve_helpers import ServerThread, free_port  # noqa: E402


@pytest.fixture(scope="module")
def ray_url():
    ray.init(num_cpus=2, include_dashboard=False,
             logging_level="error", log_to_driver=False)
    try:
        assert {n["NodeManagerAddress"] for n in ray.nodes()} == {"127.0.0.1"}
        port = free_port()
        serve.start(http_options={"host": "127.0.0.1", "port": port})
        serve.run(deployment("digits", ServeConfig(calibrate=False), replicas=2),
                  name="bitplane", route_prefix="/")
        yield f"http://127.0.0.1:{port}"
    finally:
        serve.shutdown()
        ray.shutdown()


def test_ray_serve_answers_equal_single_process(ray_url, rng):
    single = create_app("digits", ServeConfig(calibrate=False))
    xs = [gauss(rng, (int(rng.integers(1, 5)), 64)) for _ in range(12)]
    planes = [int(p) for p in rng.integers(1, 9, size=12)]
    bodies = [{"inputs": [{"name": "input", "shape": list(x.shape), "datatype": "FP32",
                           "data": x.ravel().tolist()}], "parameters": {"planes": p}}
              for x, p in zip(xs, planes)]
    with ServerThread(single) as s, httpx.Client(timeout=60) as c:
        assert c.get(ray_url + "/v2/health/ready").json() == {"ready": True}
        assert c.get(ray_url + "/v2/models/digits").json()["inputs"][0]["shape"] == [-1, 64]
        for body, p in zip(bodies, planes):
            via_ray = c.post(ray_url + "/v2/models/digits/infer", json=body)
            direct = c.post(s.url + "/v2/models/digits/infer", json=body)
            assert via_ray.status_code == 200, via_ray.text
            a, b = via_ray.json(), direct.json()
            assert a["parameters"]["planes"] == b["parameters"]["planes"] == p
            ya = np.array(a["outputs"][0]["data"], np.float32)
            yb = np.array(b["outputs"][0]["data"], np.float32)
            np.testing.assert_array_equal(ya, yb)
        r = c.post(ray_url + "/v2/models/digits/infer", json={"inputs": []})
        assert r.status_code == 400 and "non-empty list" in r.json()["error"]
