"""A short run of the sustained mixed load (`bench/load.py` runs it for 60 s): nothing fails under load."""

from bench.load import print_report, run


def test_a_short_mixed_load_is_served_without_a_single_error(live_server):
    report = run(live_server, seconds=8, workers=6)

    print()
    print_report(report)
    assert report["errors"] == 0
    assert report["requests"] > 100
