"""The binary's command line: --help, --version, --check-config and config errors."""

import os
import subprocess
import unittest

from harness import BINARY, ROOT

FIXTURES = os.path.join(ROOT, "tests", "fixtures", "config")


def run(*args, env=None):
    e = {k: v for k, v in os.environ.items() if not k.startswith("MESHHOOK_STATS_")}
    e.update(env or {})
    return subprocess.run([BINARY, *args], capture_output=True, text=True, env=e, timeout=30)


class CommandLine(unittest.TestCase):
    def test_help_exits_zero(self):
        p = run("--help")
        self.assertEqual(p.returncode, 0)
        self.assertIn("Usage:", p.stdout)

    def test_version(self):
        p = run("--version")
        self.assertEqual(p.returncode, 0)
        self.assertRegex(p.stdout, r"^meshhook-stats \d+\.\d+\.\d+")

    def test_shipped_config_checks(self):
        p = run("--check-config", "--config", os.path.join(ROOT, "config", "meshhook-stats.yaml"))
        self.assertEqual(p.returncode, 0, p.stderr)

    def test_bad_config_exits_2_naming_file_line_and_field(self):
        path = os.path.join(FIXTURES, "bad-port.yaml")
        p = run("--check-config", "--config", path)
        self.assertEqual(p.returncode, 2)
        self.assertIn(f"{path}:3: api.listen: port must be from 1 to 65535", p.stderr)

    def test_bad_environment_exits_2(self):
        p = run("--check-config", env={"MESHHOOK_STATS_LOG_LEVEL": "loud"})
        self.assertEqual(p.returncode, 2)
        self.assertIn("MESHHOOK_STATS_LOG_LEVEL: log.level", p.stderr)

    def test_unknown_option_exits_2(self):
        self.assertEqual(run("--frobnicate").returncode, 2)


if __name__ == "__main__":
    unittest.main()
