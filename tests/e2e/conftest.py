import pytest

from cptest import NODE_TOKEN, Control
from gwtest import Gateway, Redis
from lbtest import LB_NODE_ENV, Nginx


@pytest.fixture
def redis():
    r = Redis()
    yield r
    r.close()


@pytest.fixture
def gateway_factory(redis):
    made = []

    def make(env=None, args=None, redis_url=None, nofile=None):
        g = Gateway(redis_url or redis.url, env=env, args=args, nofile=nofile)
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


@pytest.fixture
def lb_fleet(redis, tmp_path):
    control = Control()
    nodes = []
    for i in range(2):
        g = Gateway(redis.url, env=dict(LB_NODE_ENV, CONTROL_PLANE_URL=control.node_target,
                                        CONTROL_NODE_TOKEN=NODE_TOKEN,
                                        CONFIG_CACHE_PATH=str(tmp_path / ("n%d.cache" % i)),
                                        REPORT_INTERVAL_MS="200", NODE_ID="node-%d" % i,
                                        SHUTDOWN_TIMEOUT_MS="2000"))
        g.wait_ready()
        nodes.append(g)
    lb = Nginx([g.port for g in nodes])
    yield control, nodes, lb
    lb.close()
    for g in nodes:
        if g.proc.poll() is None:
            g.close()
    control.close()
