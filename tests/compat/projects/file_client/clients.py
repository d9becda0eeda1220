from ploomber.clients import LocalStorageClient


def get():
    # a local folder stands for the bucket: every File product is uploaded to remote/<its path>
    return LocalStorageClient("remote")
