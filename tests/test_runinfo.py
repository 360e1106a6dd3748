"""spiking_ep.runinfo: the default thread count and the oversubscription warning."""
import torch

from spiking_ep import runinfo


def _machine(monkeypatch, *, cores, load, running):
    monkeypatch.setattr(runinfo.os, "cpu_count", lambda: cores)
    monkeypatch.setattr(runinfo.os, "getloadavg", lambda: (load, load, load))
    monkeypatch.setattr(runinfo, "_running_now", lambda: running)


def test_threads_default_to_the_idle_cores_and_oversubscription_warns(monkeypatch):
    before = torch.get_num_threads()
    said = []
    try:
        # another job holds one of two cores (load 1, it and this process runnable): one thread, no warning
        _machine(monkeypatch, cores=2, load=1.0, running=2)
        assert runinfo.choose_threads(None, log=said.append) == 1 and not said
        # a job that ended seconds ago still counts in the load average, not in what runs now
        _machine(monkeypatch, cores=2, load=2.0, running=2)
        assert runinfo.choose_threads(1, log=said.append) == 1 and not said
        # two other jobs really are running: asking for one more thread warns, naming the counts
        _machine(monkeypatch, cores=2, load=2.0, running=3)
        assert runinfo.choose_threads(1, log=said.append) == 1
        assert len(said) == 1 and "1 torch thread(s)" in said[0] and "2.0 of 2 cores busy" in said[0]
        # no /proc/stat (not Linux): the load average alone decides
        _machine(monkeypatch, cores=4, load=1.0, running=None)
        assert runinfo.busy_elsewhere() == 1.0
    finally:
        torch.set_num_threads(before)


def test_the_runnable_count_is_read_from_proc_stat():
    n = runinfo._running_now(samples=2, interval=0.0)
    assert n is None or n >= 1      # at least this process, where /proc/stat exists
