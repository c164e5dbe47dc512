// Load Audio (UnAvgLip): the upload button and the audio player of core Load Audio, on our node.
//
// The frontend gives an audio player ("audioUI", an AUDIO_UI widget) only to a fixed list of core nodes, and its
// upload button (AUDIOUPLOAD) looks that player up when it is built, so a pack node that declares
// `audio_upload` breaks. Our node declares neither on the server; this extension adds both, player first, after
// the node's own widgets. Neither is serialized into the prompt, and the workflow's widget values stay
// [audio, start_seconds, duration_seconds] whether or not this file is loaded.
import { app } from "../../scripts/app.js";

const NODE_ID = "UnAvgLip_LoadAudio";

app.registerExtension({
  name: "UnAvgLip.LoadAudio",
  async beforeRegisterNodeDef(nodeType, nodeData) {
    if (nodeData?.name !== NODE_ID) return;
    const required = nodeData.input?.required;
    if (!required?.audio || required.audioUI || required.upload) return;
    required.audioUI = ["AUDIO_UI", {}];
    required.upload = ["AUDIOUPLOAD", {}];
  },
});
