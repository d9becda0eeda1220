from ploomber.exceptions import DAGBuildEarlyStop


def stop():
    raise DAGBuildEarlyStop("enough for today")
