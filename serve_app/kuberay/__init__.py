"""KubeRay: RayService manifests rendered from a layout file and the production Serve config, and their offline
validation.

``layout.py`` holds the parameters a cluster operator edits (image, pod shapes, node selectors, which worker group
hosts which judge); ``render.py`` turns a layout plus its Serve config into manifests (the Serve config is the one
source of ``serveConfigV2``); ``validate.py`` checks a manifest the way the API server and Ray would, without a
cluster: the CRD schema, KubeRay's name rules, the Serve config through Ray's own schema classes, and whether every
placement group fits on the worker pods.
"""
