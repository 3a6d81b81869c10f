"""Reference architectures: our analytic cost against torchvision's published numbers.

Parameters must match exactly; torchvision's "GFLOPS" are conv + linear multiply-adds at
224x224 (rounded to 3-4 significant digits), compared with our `conv_linear_macs`. Needs no
module and no torchvision: the published figures are copied in below.

    python benchmarks/reference_table.py
"""

from __future__ import annotations

from nas.model.cost import arch_cost
from nas.model.reference import REFERENCES, reference
from nas.model.reference import TORCHVISION_FIGURES as TORCHVISION


def main() -> None:
    header = ("name", "params", "tv_params", "match", "GMACs(conv+linear)", "tv_GFLOPS", "diff_%", "GMACs(all)")
    rows, exact, worst = [], 0, 0.0
    for name in REFERENCES:
        cost = arch_cost(reference(name))
        tv_params, tv_gflops = TORCHVISION.get(name, (None, None))
        gmacs = cost.conv_linear_macs / 1e9
        if tv_params is None:
            rows.append((name, f"{cost.params:,}", "?", "?", f"{gmacs:.4f}", "?", "?", f"{cost.macs / 1e9:.4f}"))
            continue
        diff = 100.0 * (gmacs - tv_gflops) / tv_gflops
        exact += cost.params == tv_params
        worst = max(worst, abs(diff))
        rows.append((name, f"{cost.params:,}", f"{tv_params:,}", "yes" if cost.params == tv_params else "NO",
                     f"{gmacs:.4f}", f"{tv_gflops:g}", f"{diff:+.3f}", f"{cost.macs / 1e9:.4f}"))
    widths = [max(len(str(r[i])) for r in [header] + rows) for i in range(len(header))]

    def line(r) -> str:
        return "  ".join(str(v).ljust(w) if i == 0 else str(v).rjust(w) for i, (v, w) in enumerate(zip(r, widths)))

    print(line(header))
    print("  ".join("-" * w for w in widths))
    for r in rows:
        print(line(r))
    print()
    print("GMACs(all) adds pooling windows (K*K per output) to conv+linear; BN, activations, adds cost 0.")
    print(f"references_params_exact={exact}/{len(REFERENCES)}")
    print(f"max_macs_rel_diff_percent={worst:.4f}")


if __name__ == "__main__":
    main()
