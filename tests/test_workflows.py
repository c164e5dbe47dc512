"""The example workflows are well-formed UI graphs that use only core nodes and ours, linked type-correctly."""

import ast
import glob
import json
import os

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WORKFLOWS = sorted(glob.glob(os.path.join(ROOT, "workflows", "*.json")))
CORE_NODES_USED = {"VAELoader", "LoadVideo", "GetVideoComponents", "CreateVideo", "SaveVideo"}


def our_node_ids() -> set[str]:
    """Node ids registered in nodes/__init__.py, read without importing ComfyUI."""
    tree = ast.parse(open(os.path.join(ROOT, "nodes", "__init__.py"), encoding="utf-8").read())
    for statement in tree.body:
        if isinstance(statement, ast.Assign) and statement.targets[0].id == "NODE_CLASS_MAPPINGS":
            return {key.value for key in statement.value.keys}
    raise AssertionError("NODE_CLASS_MAPPINGS not found")


def test_there_are_workflows():
    assert WORKFLOWS


@pytest.mark.parametrize("path", WORKFLOWS, ids=os.path.basename)
def test_workflow_is_consistent(path):
    workflow = json.load(open(path, encoding="utf-8"))
    assert workflow["version"] == 0.4
    nodes = {node["id"]: node for node in workflow["nodes"]}
    known = our_node_ids() | CORE_NODES_USED
    for node in nodes.values():
        assert node["type"] in known, node["type"]
        assert node["type"].startswith("UnAvgLip_") or node["type"] in CORE_NODES_USED
    for link_id, source, source_slot, target, target_slot, link_type in workflow["links"]:
        output = nodes[source]["outputs"][source_slot]
        entry = nodes[target]["inputs"][target_slot]
        assert link_id in output["links"] and entry["link"] == link_id
        assert output["type"] == entry["type"] == link_type
    assert workflow["last_link_id"] == max(link[0] for link in workflow["links"])
    assert workflow["last_node_id"] == max(nodes)
