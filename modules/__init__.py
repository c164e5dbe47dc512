"""The UnAvgLip / MuseTalk method in plain torch and numpy. Nothing here imports ComfyUI."""
