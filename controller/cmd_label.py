"""`controller label encode|decode`: IPv6 flow labels <-> experiment/activity."""
from __future__ import annotations

import argparse

from controller.cmd_registry import add_registry_option, load_registry
from controller.errors import ExitCode, UsageError
from controller.output import print_json
from scitags_core import flowlabel
from scitags_core.registry import Registry, RegistryLookupError


def _describe(registry: Registry, label: int | None, experiment: int, activity: int,
              entropy: int | None) -> dict[str, object]:
    info = registry.describe(experiment, activity)
    return {
        "label": label, "label_hex": f"0x{label:05x}" if label is not None else None,
        "experiment_id": experiment, "experiment_name": info.experiment_name,
        "activity_id": activity, "activity_name": info.activity_name,
        "registered": info.registered, "entropy": entropy,
        "markable": 1 <= experiment <= flowlabel.EXPERIMENT_MAX,
        "scitag": flowlabel.scitag_value(experiment, activity),
        "registry": registry.identity,
    }


def _encode(args: argparse.Namespace) -> int:
    registry = load_registry(args)
    try:
        experiment, activity = registry.ids_for(args.experiment, args.activity)
        entropy = 0 if args.no_entropy else args.entropy
        if entropy is None:
            entropy = flowlabel.random_entropy()
        label = flowlabel.encode_label(experiment, activity, entropy)
    except (RegistryLookupError, ValueError, TypeError) as exc:
        raise UsageError(str(exc)) from None
    if args.json:
        print_json(_describe(registry, label, experiment, activity, entropy))
    else:
        print(f"0x{label:05x}")
    return ExitCode.OK


def _name(value: str | None) -> str:
    return value if value is not None else "unregistered"


def _decode(args: argparse.Namespace) -> int:
    registry = load_registry(args)
    try:
        if args.scitag:
            value = int(args.value.strip(), 0)
            experiment, activity = flowlabel.split_scitag(value)
            label, entropy = flowlabel.encode_label(experiment, activity, 0), None
        else:
            label = flowlabel.parse_label_text(args.value)
            experiment, activity, entropy = flowlabel.decode_label(label)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    data = _describe(registry, label, experiment, activity, entropy)
    if args.json:
        print_json(data)
        return ExitCode.OK
    note = " (without entropy)" if args.scitag else f" ({label})"
    print(f"label       {data['label_hex']}{note}")
    print(f"experiment  {experiment} ({_name(data['experiment_name'])})")
    print(f"activity    {activity} ({_name(data['activity_name'])})")
    if entropy is not None:
        print(f"entropy     {entropy} (label bits 0x{flowlabel.entropy_to_label_bits(entropy):05x})")
    print(f"scitag      {data['scitag']} (protocol value: experiment << 6 | activity)")
    print(f"tag         {'registered' if data['registered'] else 'unregistered'}"
          f" in registry {registry.identity}")
    return ExitCode.OK


def _entropy(text: str) -> int:
    try:
        value = int(text, 0)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 0 <= value <= flowlabel.ENTROPY_MAX:
        raise argparse.ArgumentTypeError(f"entropy {value} out of range 0..{flowlabel.ENTROPY_MAX}")
    return value


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "label", help="encode or decode IPv6 flow labels",
        description="Scitags packet marking: experiment (9 bits, reversed, label bits 17..9), "
                    "activity (bits 7..2) and 5 entropy bits (19, 18, 8, 1, 0) in the 20-bit "
                    "IPv6 flow label. Not the protocol value experiment << 6 | activity.")
    sub = parser.add_subparsers(dest="label_command", metavar="ACTION", required=True)

    encode = sub.add_parser("encode", help="flow label for an experiment and activity",
                            description="Print the flow label (hex) for an experiment and "
                                        "activity, given by name (case-insensitive) or id.")
    encode.add_argument("--experiment", "-e", required=True, help="experiment name or id")
    encode.add_argument("--activity", "-a", required=True, help="activity name or id")
    entropy = encode.add_mutually_exclusive_group()
    entropy.add_argument("--entropy", type=_entropy, metavar="N",
                         help="entropy as a 5-bit number 0..31 (default: random)")
    entropy.add_argument("--no-entropy", action="store_true", help="entropy bits all zero")
    add_registry_option(encode)
    encode.add_argument("--json", action="store_true", help="print JSON")
    encode.set_defaults(func=_encode)

    decode = sub.add_parser("decode", help="experiment and activity in a flow label",
                            description="Print the experiment, activity and entropy carried by a "
                                        "flow label; ids not in the registry decode as "
                                        "unregistered.")
    decode.add_argument("value", help="flow label: decimal or 0x hex (0..0xFFFFF)")
    decode.add_argument("--scitag", action="store_true",
                        help="VALUE is the protocol value (experiment << 6 | activity) "
                             "from XRootD/HTTP/FTS, not a flow label")
    add_registry_option(decode)
    decode.add_argument("--json", action="store_true", help="print JSON")
    decode.set_defaults(func=_decode)
