import pytest

from gwtest import Gateway, Redis


@pytest.fixture
def redis():
    r = Redis()
    yield r
    r.close()


@pytest.fixture
def gateway_factory(redis):
    made = []

    def make(env=None, args=None, redis_url=None):
        g = Gateway(redis_url or redis.url, env=env, args=args)
        made.append(g)
        return g

    yield make
    errors = []
    for g in made:
        try:
            g.close()
        except AssertionError as e:
            errors.append(str(e))
    assert not errors, "\n".join(errors)


@pytest.fixture
def gw(gateway_factory):
    g = gateway_factory()
    g.wait_ready()
    return g
