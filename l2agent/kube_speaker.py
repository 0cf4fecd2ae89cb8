"""`l2agent speaker --kubeconfig ...`: the import path speaker_main uses for the Kubernetes
source; the implementation lives in `l2agent.kube.attach`."""

from l2agent.kube.attach import KubeSpeakerLink, attach_kube_source

__all__ = ["KubeSpeakerLink", "attach_kube_source"]
