"""Racing calls: run them in threads released at the same moment."""
import concurrent.futures
import threading

# seconds; a lost thread fails the test instead of hanging the suite
RACE_TIMEOUT = 30
# how often a race test runs its race in process: a lost race shows in one round of these
RACE_ROUNDS = 20


def race(*calls):
    """Run ``calls`` in threads released at the same moment by a barrier; their results."""
    barrier = threading.Barrier(len(calls), timeout=RACE_TIMEOUT)

    def released(call):
        barrier.wait()
        return call()

    with concurrent.futures.ThreadPoolExecutor(len(calls)) as pool:
        futures = [pool.submit(released, call) for call in calls]
        return [future.result(timeout=RACE_TIMEOUT) for future in futures]
