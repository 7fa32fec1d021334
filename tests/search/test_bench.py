"""bench/search.py at a tiny size: writes its PNG and replaces only its own RESULTS.md section."""
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_bench_writes_plot_and_only_its_section(tmp_path):
    results = tmp_path / "RESULTS.md"
    results.write_text("# Benchmark results\n\n## Search (bench/search.py)\nold\n\n## Other\nkeep me\n")
    subprocess.run([sys.executable, str(ROOT / "bench" / "search.py"), "--budget", "4", "--seeds", "2",
                    "--strategies", "random;evolution:population=2", "--max-params", "100000", "--results", str(results)],
                   check=True, capture_output=True)
    text = results.read_text()
    assert "old" not in text and "## Other\nkeep me" in text
    assert "| random |" in text and "| evolution:population=2 |" in text
    assert text.count("## Search (bench/search.py)") == 1
    assert (tmp_path / "search.png").stat().st_size > 1000
