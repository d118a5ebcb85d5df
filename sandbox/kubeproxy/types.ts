// The fields of core/v1 Service and discovery.k8s.io/v1 EndpointSlice (as served by the API) that kube-proxy reads.

export interface KubeObjectMeta {
  name: string;
  namespace?: string;
  labels?: Record<string, string>;
}

export interface KubeServicePort {
  name?: string;
  protocol?: string;
  port: number;
  targetPort?: number | string;
}

export interface KubeService {
  apiVersion?: string;
  kind?: string;
  metadata: KubeObjectMeta;
  spec?: {
    type?: string;
    clusterIP?: string;
    clusterIPs?: string[];
    ports?: KubeServicePort[];
    internalTrafficPolicy?: string;
  };
}

export interface KubeEndpoint {
  addresses: string[];
  conditions?: { ready?: boolean | null; serving?: boolean | null; terminating?: boolean | null };
  nodeName?: string;
}

export interface KubeEndpointPort {
  name?: string | null;
  protocol?: string | null;
  port?: number | null;
}

export interface KubeEndpointSlice {
  apiVersion?: string;
  kind?: string;
  metadata: KubeObjectMeta;
  addressType: string;
  endpoints?: KubeEndpoint[] | null;
  ports?: KubeEndpointPort[] | null;
}

/** Label linking an EndpointSlice to its Service. */
export const SERVICE_NAME_LABEL = "kubernetes.io/service-name";
