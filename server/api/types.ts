/** TypeScript view of the API definition file (see schema.ts for the authoritative shape). */
export interface ThrottleSettings {
  rateLimit: number;
  burstLimit: number;
}

export interface LambdaIntegrationDef {
  type: 'LAMBDA';
  handler: string;
  timeoutInMillis?: number;
  payloadFormatVersion?: '1.0' | '2.0';
}

export interface MockIntegrationDef {
  type: 'MOCK';
  response?: { statusCode?: number; body?: string; headers?: Record<string, string> };
  timeoutInMillis?: number;
}

export type IntegrationDef =
  | LambdaIntegrationDef
  | MockIntegrationDef
  | import('../integrations/backend-integrations.ts').HttpProxyDef
  | import('../integrations/backend-integrations.ts').HttpDef
  | import('../integrations/backend-integrations.ts').RedisStreamDef;

export interface HttpRouteDef {
  integration: IntegrationDef;
  authorizer?: string;
  authorizationScopes?: string[];
  apiKeyRequired?: boolean;
  requestModel?: string | Record<string, unknown>;
  requestParameters?: string[];
  requestValidator?: 'BODY' | 'PARAMETERS' | 'ALL' | 'NONE';
  throttling?: ThrottleSettings;
  description?: string;
}

export interface HttpApiDef {
  mode?: 'REST' | 'HTTP';
  routes: Record<string, HttpRouteDef>;
  cors?: import('../http/cors.ts').CorsConfig;
  binaryMediaTypes?: string[];
  gatewayResponses?: Record<string, import('../http/gateway-responses.ts').GatewayResponseCustomisation>;
}

export interface WsRouteDef {
  integration?: IntegrationDef;
  routeResponse?: boolean;
  authorizer?: string;
  authorizationScopes?: string[];
  apiKeyRequired?: boolean;
  requestModel?: string | Record<string, unknown>;
  throttling?: ThrottleSettings;
  description?: string;
}

export interface StageDef {
  description?: string;
  variables?: Record<string, string>;
  throttling?: { default?: ThrottleSettings; routes?: Record<string, ThrottleSettings> };
}

export interface UsagePlanDef {
  description?: string;
  throttle?: ThrottleSettings;
  quota?: { limit: number; period: 'DAY' | 'WEEK' | 'MONTH' };
  routes?: Record<string, ThrottleSettings>;
  apiKeys: string[];
}

export interface ApiDefinition {
  name: string;
  description?: string;
  apiId?: string;
  region?: string;
  accountId?: string;
  stages: Record<string, StageDef>;
  /** API (account) level token bucket */
  throttling?: ThrottleSettings;
  apiKeySource?: 'HEADER' | 'AUTHORIZER';
  clientLimits?: { perConnection?: ThrottleSettings; perClientIp?: ThrottleSettings };
  usagePlans?: Record<string, UsagePlanDef>;
  limits?: Partial<import('../limits.ts').Limits>;
  management?: {
    accessKeys?: Array<{ accessKeyId: string; secretAccessKey: string }>;
    bearerToken?: string;
    authentication?: 'AWS_IAM' | 'NONE';
  };
  http?: HttpApiDef;
  authorizers?: Record<string, import('../auth/authorizers.ts').AuthorizerDef>;
  websocket?: {
    routeSelectionExpression: string;
    description?: string;
    routes: Record<string, WsRouteDef>;
  };
}
