#!/usr/bin/env python3
"""Time `slidesparse prune` and `slide` on a large generated BF16 checkpoint; record peak RSS.

Usage: python3 bench/prune_large.py [--cli build/slidesparse] [--layers 7] [--pattern 6:8]
                                    [--workdir out/bench] [--out bench/results/prune_1gib.json]
Each step runs as its own child process; its wall time and peak resident set (from wait4's
rusage) are recorded. The input is generated first with `slidesparse synth`, so it is in the page
cache unless --drop-caches is given and permitted (root). Writes one JSON document.
"""
import argparse, datetime, json, os, platform, shutil, subprocess, sys, time

def run(cmd):
    t0 = time.perf_counter()
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE)
    out = p.stdout.read()
    _, status, ru = os.wait4(p.pid, 0)
    wall = time.perf_counter() - t0
    rc = os.waitstatus_to_exitcode(status)
    if rc != 0:
        sys.exit(f"command failed ({rc}): {' '.join(cmd)}")
    return dict(cmd=" ".join(cmd), wall_s=round(wall, 3), peak_rss_bytes=ru.ru_maxrss * 1024,
                user_s=round(ru.ru_utime, 3), sys_s=round(ru.ru_stime, 3), report=json.loads(out))

def drop_caches():
    try:
        subprocess.run(["sync"], check=True)
        with open("/proc/sys/vm/drop_caches", "w") as f:
            f.write("3\n")
        return True
    except OSError:
        return False

def main():
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cli", default=os.path.join(root, "build", "slidesparse"))
    ap.add_argument("--layers", type=int, default=7, help="7 layers of hidden 2048 / FFN 8192 + 32k vocab = 1.04 GiB")
    ap.add_argument("--hidden", type=int, default=2048)
    ap.add_argument("--intermediate", type=int, default=8192)
    ap.add_argument("--vocab", type=int, default=32000)
    ap.add_argument("--pattern", default="6:8")
    ap.add_argument("--precision", default="keep")
    ap.add_argument("--workdir", default=os.path.join(root, "out", "bench"))
    ap.add_argument("--out", default=None, help="result JSON (default: print only)")
    ap.add_argument("--drop-caches", action="store_true", help="drop the page cache before each step (root)")
    ap.add_argument("--keep", action="store_true", help="keep the generated checkpoints")
    a = ap.parse_args()

    os.makedirs(a.workdir, exist_ok=True)
    dense, pruned, slid = (os.path.join(a.workdir, n) for n in ("dense.safetensors", "pruned.safetensors", "slid.safetensors"))
    cli = a.cli
    steps = {}
    steps["synth"] = run([cli, "synth", dense, "--layers", str(a.layers), "--hidden", str(a.hidden),
                          "--intermediate", str(a.intermediate), "--vocab", str(a.vocab), "--force", "-q", "--json"])
    cold = []
    for name, cmd in [("prune", [cli, "prune", "--pattern", a.pattern, "--precision", a.precision, dense, pruned, "--force", "-q", "--json"]),
                      ("slide", [cli, "slide", pruned, slid, "--force", "-q", "--json"]),
                      ("verify", [cli, "verify", slid, "--against", dense, "-q", "--json"])]:
        if a.drop_caches:
            cold.append(drop_caches())
        steps[name] = run(cmd)
    in_bytes = os.path.getsize(dense)
    result = {
        "benchmark": "prune_large",
        "command": " ".join([sys.executable] + sys.argv),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "git_sha": subprocess.run(["git", "-C", root, "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip(),
        "machine": {"cpu": next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), platform.processor()),
                    "nproc": os.cpu_count(), "kernel": platform.release()},
        "page_cache": "dropped before each step" if a.drop_caches and all(cold) else "warm (input just written)",
        "input_bytes": in_bytes,
        "pattern": a.pattern, "precision": a.precision,
        "steps": {k: {kk: vv for kk, vv in v.items() if kk != "report"} for k, v in steps.items()},
        "verify_compliant": steps["verify"]["report"]["compliant"],
        "layers_pruned": steps["prune"]["report"]["num_layers"],
    }
    print(f"input {in_bytes / 2**30:.3f} GiB BF16 ({a.layers} layers), page cache: {result['page_cache']}")
    print(f"{'step':<8} {'wall s':>8} {'peak RSS':>12} {'user s':>8}")
    for k in ("synth", "prune", "slide", "verify"):
        s = steps[k]
        print(f"{k:<8} {s['wall_s']:>8.2f} {s['peak_rss_bytes'] / 2**30:>9.3f} GiB {s['user_s']:>8.2f}")
    print(f"verify compliant: {result['verify_compliant']}")
    if a.out:
        os.makedirs(os.path.dirname(os.path.abspath(a.out)), exist_ok=True)
        with open(a.out, "w") as f:
            json.dump(result, f, indent=2)
            f.write("\n")
        print(f"wrote {a.out}")
    if not a.keep:
        for p in (dense, pruned, slid):
            if os.path.exists(p):
                os.remove(p)

if __name__ == "__main__":
    main()
