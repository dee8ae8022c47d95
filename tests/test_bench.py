import json

from jaxcnn import bench


def test_quick_conv_benchmark_writes_json_table_and_plots(tmp_path):
    bench.main(["conv", "--quick", "--repeats", "3", "--out", str(tmp_path)])
    report = json.loads((tmp_path / "conv.json").read_text())
    assert report["sgemm_gflops"] > 0
    rows = report["results"]
    assert {r["impl"] for r in rows} >= {
        "corr2d (naive loops)",
        "patches jit",
        "lax jit",
        "auto jit",
    }
    toy = [r for r in rows if r["size"] == 8]
    naive = next(r for r in toy if r["impl"] == "corr2d (naive loops)")
    jitted = next(r for r in toy if r["impl"] == "lax jit")
    # One jitted call against one eager op per output pixel (64 of them).
    assert jitted["speedup_vs_naive"] > 5 and jitted["median_s"] < naive["median_s"]
    assert all(r["compile_s"] > 0 for r in rows if r["jit"])
    assert "| lax jit |" in (tmp_path / "conv.md").read_text()
    assert (tmp_path / "conv_time.png").stat().st_size > 1000
    assert (tmp_path / "conv_gflops.png").stat().st_size > 1000
