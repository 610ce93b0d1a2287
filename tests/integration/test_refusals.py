"""Every emit the engine refuses is counted by its reason where the API shows
it, and an operator that has most of its emits refused says so (issue 16,
items 7 and 8): an operator refusing 15 of 20 emits per poll for max_pairs
used to show `polling`, `rejects: 0` and nothing in /metrics; `ts = -1` and
`ts = 9e15` used to be served, and the price string "1e2" as "100"."""
import requests

from conftest import TOKEN, wait_until

CAPPED = """return { name = "capped", spec = 1, poll_every = 0.2, max_pairs = 5,
  poll = function(x)
    local list = {}
    for i = 1, 20 do
      list[i] = { base = "C" .. i, quote = "USD", bid = "1", ask = "2" }
    end
    x.emit_many(list)
  end }
"""

ODD = """return { name = "odd", spec = 1, poll_every = 0.2,
  poll = function(x)
    x.emit{ base = "ODD", quote = "USD", bid = "1", ask = "2", ts = x.now() }
    x.emit{ base = "ODD", quote = "USD", bid = "1", ask = "3", ts = -1 }
    x.emit{ base = "ODD", quote = "USD", bid = "1", ask = "3", ts = 9e15 }
    x.emit{ base = "ODD", quote = "USD", bid = "1", ask = "1e2" }
  end }
"""


def detail(service, name):
    r = requests.get(f"{service.url}/v1/exchanges/{name}",
                     headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10)
    assert r.status_code == 200, r.text
    return r.json()


def rejects_metric(service, exchange, reason):
    text = requests.get(f"{service.url}/metrics", timeout=10).text
    want = f'rx_rejects_total{{exchange="{exchange}",reason="{reason}"}} '
    for line in text.splitlines():
        if line.startswith(want):
            return float(line[len(want):])
    return None


def test_refusals_are_counted_and_shown(make_service, tmp_path):
    ops = tmp_path / "ops"
    ops.mkdir()
    (ops / "capped.lua").write_text(CAPPED)
    (ops / "odd.lua").write_text(ODD)
    service = make_service(operators_dir=f'"{ops}"', operators="{}")

    wait_until(lambda: detail(service, "capped")["state"] == "degraded", 30,
               "capped to say most of its emits are refused")
    capped = detail(service, "capped")
    assert capped["reason"].startswith("most emits refused: "), capped
    assert "max_pairs" in capped["reason"], capped
    assert capped["pairs"] == 5
    assert capped["reject_reasons"]["max_pairs"] >= 15
    assert capped["rejects"] == sum(capped["reject_reasons"].values())
    assert rejects_metric(service, "capped", "max_pairs") >= 15
    assert rejects_metric(service, "capped", "filtered") == 0

    # Three of odd's four emits are refused: its window says so too.
    wait_until(lambda: detail(service, "odd")["state"] == "degraded", 30, "odd's verdict")
    odd = detail(service, "odd")
    assert odd["reject_reasons"]["bad_ts"] >= 2, odd
    assert odd["reject_reasons"]["bad_number"] >= 1, odd
    assert rejects_metric(service, "odd", "bad_ts") >= 2
    r = requests.get(f"{service.url}/v1/rates/ODD_USD?exchange=odd",
                     headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10)
    assert r.status_code == 200, r.text
    assert r.text.count('"ask":"2"') == 1, r.text
    assert "1e2" not in r.text and '"100"' not in r.text
