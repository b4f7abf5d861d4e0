// @google/model-viewer's prebuilt bundle, imported only for the <model-viewer> element it defines.
declare module "@google/model-viewer/dist/model-viewer.min.js";
