"""Generated run names, "adjective-noun-NNN" as MLflow makes them."""
from __future__ import annotations

import secrets

_ADJECTIVES = (
    "able amazing bold brave bright calm clean clever crisp curious dapper daring eager "
    "earnest fair fast fearless gentle glad grand happy honest humble jolly keen kind "
    "lively lucky mellow merry neat nimble noble polite proud quick quiet rare rebel "
    "serene sharp shy silent smooth snug spry steady sunny swift tidy upbeat vast warm "
    "wise witty zealous"
).split()
_NOUNS = (
    "ant ape bass bat bear bee bird boar calf carp cat colt conch cow crab crane cub "
    "deer doe dog dove duck eel elk emu finch fish flea fly foal fowl fox frog gnat "
    "goat goose grouse gull hare hawk hen heron horse hound jay kit koi lamb lark lynx "
    "mink mole moth mouse mule newt owl ox panda pig pug ram rat robin seal shark "
    "shrew skunk sloth slug snail snake squid stag stork swan toad trout wasp whale "
    "wolf worm wren yak zebra"
).split()


def generate_run_name() -> str:
    return (
        f"{secrets.choice(_ADJECTIVES)}-{secrets.choice(_NOUNS)}-{secrets.randbelow(1000)}"
    )
