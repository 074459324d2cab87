#!/usr/bin/env python3
"""A small `helm` for Gantry's chart, on Helm's own library (no helm binary needed).

The PyPI package helm-python-sdk carries Helm v4's Go library behind a Python API;
e2e/helm-venv.sh makes a virtualenv holding it (pinned), and this script re-runs itself in
that venv when started with another python. The subcommands behave like helm's:

    e2e/helm.py template [NAME] [CHART] [-n NS] [-f VALUES.yaml] [--set a.b=c] [--include-crds]
    e2e/helm.py lint [CHART] [-f ...] [--set ...] [--strict]
    e2e/helm.py install NAME [CHART] -n NS [--create-namespace] [-f ...] [--set ...] [--wait]
    e2e/helm.py uninstall NAME -n NS [--wait] [--ignore-not-found]
    e2e/helm.py list [-n NS | -A]

NAME defaults to `gantry`, CHART to this checkout's charts/gantry. `template` is Helm's own
client-side dry-run install (what `helm template` runs): no cluster is contacted, and the
manifests come out in Helm's install order, each headed `# Source: <template>`. `install`,
`uninstall` and `list` talk to the cluster of --kubeconfig (else $KUBECONFIG, else
~/.kube/config) and keep each release in a Secret `sh.helm.release.v1.NAME.vN` in its
namespace, as the helm CLI does, so a real helm sees the same releases. Values merge as in
helm: the chart's defaults, then each -f file in order, then every --set and --set-string
(maps merge key by key; anything else, lists included, is replaced, so `--set l[0]=x`
replaces the whole list where helm would change one item).

Errors print one line, `helm.py: error: ...`, and exit 1 (2 for bad usage).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any, NoReturn

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CHART = REPO_ROOT / "charts" / "gantry"
SEVERITIES = {0: "UNKNOWN", 1: "INFO", 2: "WARNING", 3: "ERROR"}


def venv_python() -> Path:
    """Where e2e/helm-venv.sh puts the venv's python (keep the three places in step)."""
    venv = os.environ.get("GANTRY_HELM_VENV") or os.path.join(
        os.environ.get("GANTRY_CACHE", "/var/cache/gantry"), "helm-venv"
    )
    return Path(venv) / "bin" / "python"


def import_helm() -> Any:
    """helm_python, re-running this script in the venv when this python lacks it."""
    try:
        import helm_python

        return helm_python
    except ImportError:
        python = venv_python()
        if python.exists() and Path(sys.executable) != python:
            os.execv(python, [str(python), __file__, *sys.argv[1:]])
        fail(f"helm-python-sdk is not installed in {python.parent.parent}: run e2e/helm-venv.sh")


def fail(message: str, code: int = 1) -> NoReturn:
    print(f"helm.py: error: {' '.join(message.split())}", file=sys.stderr)
    sys.exit(code)


# ---------------------------------------------------------------------------
# Pure helpers


def merge_values(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """`override` laid over `base`, as helm merges -f files and --set: nested maps merge
    key by key, any other value (lists included) replaces the one below."""
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = merge_values(merged[key], value)
        else:
            merged[key] = value
    return merged


def with_crds(manifest: str, crds: list[dict[str, str]]) -> str:
    """The manifests preceded by the chart's CRDs, as `helm template --include-crds` prints them."""
    head = "".join(f"---\n# Source: {crd['filename']}\n{crd['data'].rstrip()}\n" for crd in crds)
    return head + manifest


def lint_report(chart: str, report: dict[str, Any], strict: bool) -> tuple[str, bool]:
    """`helm lint`'s text for a report from the library, and whether the chart failed
    (an error, or with `strict` a warning)."""
    lines = [f"==> Linting {chart}"]
    failed = bool(report.get("errors"))
    for message in report.get("messages", []):
        severity = message.get("severity", 0)
        lines.append(f"[{SEVERITIES.get(severity, 'UNKNOWN')}] {message.get('path', '')}: {message.get('error', '')}")
        failed = failed or severity >= 3 or (strict and severity >= 2)
    known = {m.get("error") for m in report.get("messages", [])}
    lines += [f"[ERROR] {error}" for error in report.get("errors", []) if error not in known]
    lines.append("")
    lines.append(f"1 chart(s) linted, {int(failed)} chart(s) failed")
    return "\n".join(lines) + "\n", failed


def release_table(releases: list[dict[str, Any]]) -> str:
    """`helm list`'s table."""
    header = ["NAME", "NAMESPACE", "REVISION", "UPDATED", "STATUS", "CHART", "APP VERSION"]
    rows = [
        [
            str(r.get("name", "")),
            str(r.get("namespace", "")),
            str(r.get("revision", "")),
            str(r.get("deployed_at", "")),
            str(r.get("status", "")),
            f"{r.get('chart_name', '')}-{r.get('chart_version', '')}",
            str(r.get("app_version", "")),
        ]
        for r in releases
    ]
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    return "".join("\t".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() + "\n" for row in [header, *rows])


# ---------------------------------------------------------------------------
# Subcommands


def user_values(helm: Any, args: argparse.Namespace) -> dict[str, Any]:
    """The values given with -f, --set and --set-string, merged in helm's order."""
    values: dict[str, Any] = {}
    for file in args.values:
        try:
            text = Path(file).read_text()
        except OSError as e:
            fail(f"cannot read values file {file}: {e.strerror}")
        values = merge_values(values, helm.values_from_yaml(text) or {})
    for expression in args.set:
        values = merge_values(values, helm.parse_set_string(expression))
    for expression in args.set_string:
        values = merge_values(values, helm.parse_set_string_values(expression))
    return values


def cmd_template(helm: Any, args: argparse.Namespace) -> None:
    chart = helm.Chart.load(args.chart)
    # A client-side dry run keeps nothing and contacts no cluster: `helm template` exactly.
    with helm.Config(namespace=args.namespace, storage_driver="memory") as config:
        release = config.install(chart, args.name, user_values(helm, args), namespace=args.namespace, dry_run="client")
    manifest = release.get("manifest", "")
    sys.stdout.write(with_crds(manifest, chart.crds) if args.include_crds else manifest)


def cmd_lint(helm: Any, args: argparse.Namespace) -> None:
    report = helm.lint(args.chart, user_values(helm, args), strict=args.strict, namespace=args.namespace)
    text, failed = lint_report(args.chart, report, args.strict)
    sys.stdout.write(text)
    if failed:
        sys.exit(1)


def cluster(helm: Any, args: argparse.Namespace) -> Any:
    """Helm's client for the cluster of --kubeconfig (else $KUBECONFIG, else ~/.kube/config),
    releases stored as Secrets in the release namespace."""
    return helm.Config(kubeconfig_path=args.kubeconfig, namespace=args.namespace, storage_driver="secret")


def cmd_install(helm: Any, args: argparse.Namespace) -> None:
    chart = helm.Chart.load(args.chart)
    with cluster(helm, args) as config:
        release = config.install(
            chart,
            args.name,
            user_values(helm, args),
            namespace=args.namespace,
            create_namespace=args.create_namespace,
            wait="watcher" if args.wait else None,
            timeout=args.timeout,
        )
    print(f"NAME: {release.get('name')}")
    print(f"NAMESPACE: {release.get('namespace')}")
    print(f"STATUS: {release.get('status')}")
    print(f"REVISION: {release.get('revision')}")
    if release.get("notes"):
        print("NOTES:")
        print(release["notes"].rstrip())


def cmd_uninstall(helm: Any, args: argparse.Namespace) -> None:
    with cluster(helm, args) as config:
        result = config.uninstall(
            args.name,
            wait="watcher" if args.wait else None,
            timeout=args.timeout,
            ignore_not_found=args.ignore_not_found,
        )
    result = result or {}
    if "release" not in result:
        print(f'release "{args.name}" not found, nothing to uninstall')
    else:
        print(result.get("info") or f'release "{args.name}" uninstalled')


def cmd_list(helm: Any, args: argparse.Namespace) -> None:
    with cluster(helm, args) as config:
        sys.stdout.write(release_table(config.list(all_namespaces=args.all_namespaces)))


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="helm.py", description=__doc__.split("\n\n")[0])
    sub = top.add_subparsers(dest="command", required=True)

    def values_flags(p: argparse.ArgumentParser) -> None:
        p.add_argument("-f", "--values", action="append", default=[], metavar="FILE", help="a YAML values file")
        p.add_argument("--set", action="append", default=[], metavar="K=V", help="values, as helm --set")
        p.add_argument("--set-string", action="append", default=[], metavar="K=V", help="string values")

    def namespace_flag(p: argparse.ArgumentParser) -> None:
        p.add_argument("-n", "--namespace", default="default", help="the release namespace (default: default)")

    def kubeconfig_flag(p: argparse.ArgumentParser) -> None:
        p.add_argument("--kubeconfig", metavar="FILE", help="the cluster's kubeconfig (default $KUBECONFIG)")

    def timeout_flag(p: argparse.ArgumentParser) -> None:
        p.add_argument("--timeout", type=int, default=300, metavar="SECONDS", help="how long to wait (default 300)")

    chart_default = os.path.relpath(DEFAULT_CHART)

    p = sub.add_parser("template", help="render the chart locally and print the manifests")
    p.add_argument("name", nargs="?", default="gantry", help="release name (default gantry)")
    p.add_argument("chart", nargs="?", default=chart_default, help="chart directory (default charts/gantry)")
    namespace_flag(p)
    values_flags(p)
    p.add_argument("--include-crds", action="store_true", help="print the chart's CRDs first")
    p.set_defaults(run=cmd_template)

    p = sub.add_parser("lint", help="check the chart as helm lint does")
    p.add_argument("chart", nargs="?", default=chart_default, help="chart directory (default charts/gantry)")
    namespace_flag(p)
    values_flags(p)
    p.add_argument("--strict", action="store_true", help="fail on warnings too")
    p.set_defaults(run=cmd_lint)

    p = sub.add_parser("install", help="install the chart as a release in the cluster")
    p.add_argument("name", help="release name")
    p.add_argument("chart", nargs="?", default=chart_default, help="chart directory (default charts/gantry)")
    namespace_flag(p)
    kubeconfig_flag(p)
    values_flags(p)
    p.add_argument("--create-namespace", action="store_true", help="create the namespace if missing")
    p.add_argument("--wait", action="store_true", help="wait until every object is ready")
    timeout_flag(p)
    p.set_defaults(run=cmd_install)

    p = sub.add_parser("uninstall", help="delete a release and what it installed (not its CRDs)")
    p.add_argument("name", help="release name")
    namespace_flag(p)
    kubeconfig_flag(p)
    p.add_argument("--wait", action="store_true", help="wait until every object is gone")
    p.add_argument("--ignore-not-found", action="store_true", help="succeed when the release does not exist")
    timeout_flag(p)
    p.set_defaults(run=cmd_uninstall)

    p = sub.add_parser("list", help="the releases in a namespace")
    namespace_flag(p)
    kubeconfig_flag(p)
    p.add_argument("-A", "--all-namespaces", action="store_true", help="in every namespace")
    p.set_defaults(run=cmd_list)
    return top


def main() -> None:
    args = parser().parse_args()
    helm = import_helm()
    try:
        args.run(helm, args)
    except helm.HelmError as e:
        fail(str(e))


if __name__ == "__main__":
    main()
