from dlbench.seeding import derive_seed


def test_derived_seeds_are_stable_and_distinct():
    keys = [(0,), (0, 0), (0, 0, 0), (1,), (0, 1), (1, 0), (7, 3, 2), (7, 2, 3)]
    seeds = [derive_seed(*k) for k in keys]
    assert len(set(seeds)) == len(keys)
    assert seeds == [derive_seed(*k) for k in keys]
    assert all(0 <= s < 2**31 for s in seeds)


def test_every_stream_key_is_distinct():
    from dlbench import seeding

    keys = {name: value for name, value in vars(seeding).items() if name.endswith("_KEY")}
    assert len(keys) >= 10 and len(set(keys.values())) == len(keys), keys
