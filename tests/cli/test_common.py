"""What every subcommand shares (causalsr.cli.common): exit codes in the help, -o/--output, older spellings."""
import pytest

from causalsr.cli import common
from causalsr.cli.main import COMMANDS, build_parser, main


def test_exit_codes_are_documented_in_every_help(capsys):
    for name in COMMANDS:
        parser = build_parser([name])
        sub = parser._subparsers._group_actions[0].choices[name]  # argparse keeps subparsers here
        assert sub.epilog == common.EXIT_STATUS_HELP, name
    assert (common.OK, common.FAILED, common.USAGE) == (0, 1, 2)


def test_no_command_is_a_usage_error(capsys):
    assert main([]) == common.USAGE


@pytest.mark.parametrize("command, old", [("train", "--out"), ("fit-posterior", "--out")])
def test_output_has_one_spelling_and_old_ones_still_work(command, old, capsys):
    head = ["train", "--config", "c.yaml"] if command == "train" else ["fit-posterior", "x4"]
    for spelling in ("-o", "--output", old):
        argv = [*head, spelling, "somewhere"]
        assert build_parser(argv).parse_args(argv).output == "somewhere"
    err = capsys.readouterr().err
    assert err.count("deprecated") == 1 and f"{old} is deprecated; use -o/--output" in err
    assert old not in build_parser(head).format_help().replace("--output", "")  # hidden


def test_fit_posterior_without_output_is_a_usage_error(capsys):
    assert main(["fit-posterior", "x4"]) == common.USAGE
    assert "-o/--output" in capsys.readouterr().err


def test_parse_do_errors_name_the_option():
    assert common.parse_do(["noise=0", "jpeg=100"]) == {"noise": 0.0, "jpeg": 100.0}
    for items, words in [(["noise"], "FACTOR=VALUE"), (["noise=1", "noise=2"], "twice"),
                         (["noise=80"], "0..50"), (["grain=1"], "unknown degradation factor")]:
        with pytest.raises(ValueError, match=words):
            common.parse_do(items)
