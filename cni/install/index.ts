// Public surface of the CNI installer: putting Ambit's plugin and its chain entry on a node, and taking them off.
export { CniConfigError, hasAmbit, primaryConfig, withAmbit, withoutAmbit } from "./conflist.ts";
export { type ChainState, CniInstaller, type CniInstallerOptions, PLUGIN_FILE } from "./installer.ts";
export { type InClusterCredentials, PLUGIN_KUBECONFIG_FILE, inClusterCredentials, pluginKubeconfig } from "./plugin-kubeconfig.ts";
