"""Screenshots of the product for the README (`make screenshots`): a demo database
is seeded in a temporary directory, the app is served on a free port on
127.0.0.1, and Debian's Chromium (through Playwright) logs in as the demo users
and photographs each page at a desktop and a phone size into docs/screenshots/.

    .venv/bin/python scripts/screenshots.py [--out DIR] [--tasks N] [--only NAME]
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from fsar.testing import CHROMIUM, CHROMIUM_ARGS  # noqa: E402  (the browser the tests use)

PASSWORD = "fsar-demo-2026"
SIZES = {"desktop": {"width": 1366, "height": 900}, "phone": {"width": 390, "height": 844}}
# (name, demo user, path or a callable finding it, what to wait for)
PAGES = [
    ("dashboard", "operator", "/", "Operator dashboard"),
    ("metrics-drilldown", "operator", "/tasks/metrics/?window=7d&task_type=implement_idea", "Task performance"),
    ("case", "bob", "case", "Case"),
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def manage(env: dict, *args: str) -> str:
    result = subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True, check=True
    )
    return result.stdout


def wait_until_up(url: str, server: subprocess.Popen, log: Path, seconds: float = 120) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"the server stopped: {log.read_text(errors='replace')[-2000:]}")
        try:
            with urllib.request.urlopen(url + "login/", timeout=5):
                return
        except urllib.error.HTTPError:
            return  # it answers
        except OSError:
            time.sleep(0.3)
    raise SystemExit(f"the server at {url} did not come up")


def case_path(env: dict) -> str:
    """The demo's blocking report's case: held tasks, one vote of two, a discussion."""
    out = manage(
        env,
        "shell",
        "-c",
        "from reviews.models import Case; "
        "print(Case.objects.filter(reports__report_id='fsar_demo-blocking-rollout').values_list('pk', flat=True)[0])",
    )
    return f"/reviews/cases/{out.strip().splitlines()[-1]}/"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "screenshots")
    parser.add_argument("--tasks", type=int, default=12_000)
    parser.add_argument("--only", default="")
    parser.add_argument("--page", action="append", default=[], help="NAME=USER:PATH, photographed as well")
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    args.out.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="fsar-screens-"))
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    env |= {"DATABASE_URL": f"sqlite:///{work / 'demo.sqlite3'}", "DEBUG": "1", "PYTHONUNBUFFERED": "1"}
    server = None
    try:
        manage(env, "migrate", "--noinput")
        manage(env, "seed_demo", "--tasks", str(args.tasks), "--key-file", str(work / "key"))
        port = free_port()
        url = f"http://127.0.0.1:{port}/"
        log = work / "server.log"
        with log.open("w") as log_file:
            server = subprocess.Popen(
                [sys.executable, "manage.py", "runserver", f"127.0.0.1:{port}", "--noreload"],
                cwd=ROOT,
                env=env,
                stdout=log_file,
                stderr=subprocess.STDOUT,
            )
        wait_until_up(url, server, log)
        paths = {"case": case_path(env)}
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            extra = []
            for spec in args.page:
                name, _, rest = spec.partition("=")
                username, _, path = rest.partition(":")
                extra.append((name, username, path, None))
            for name, username, path, heading in [*PAGES, *extra]:
                if args.only and args.only != name:
                    continue
                for size_name, viewport in SIZES.items():
                    context = browser.new_context(viewport=viewport, device_scale_factor=1)
                    page = context.new_page()
                    page.goto(url + "login/")
                    page.fill("#id_username", username)
                    page.fill("#id_password", PASSWORD)
                    page.click("button[type=submit]")
                    page.wait_for_load_state("networkidle")
                    page.goto(url.rstrip("/") + paths.get(path, path))
                    if heading:
                        page.get_by_role("heading", name=heading).first.wait_for()
                    page.wait_for_load_state("networkidle")
                    target = args.out / f"{name}-{size_name}.png"
                    page.screenshot(path=str(target), full_page=True)
                    print(f"wrote {target.relative_to(ROOT) if target.is_relative_to(ROOT) else target}")
                    context.close()
            browser.close()
    finally:
        if server is not None:
            server.terminate()
            server.wait(timeout=30)
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
