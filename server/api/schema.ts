import { gatewayResponsesSchema } from '../http/gateway-responses.ts';

/**
 * JSON Schema of the API definition file (YAML or JSON). Property names follow Amazon API
 * Gateway v2 (camelCase). Every object is closed (`additionalProperties: false`) so that a
 * typo is an error with its path, never a silently ignored option.
 */
const positiveInt = { type: 'integer', minimum: 1 } as const;

const throttle = {
  type: 'object',
  additionalProperties: false,
  required: ['rateLimit', 'burstLimit'],
  properties: { rateLimit: { type: 'number', minimum: 0 }, burstLimit: { type: 'integer', minimum: 0 } },
} as const;

const headersMap = { type: 'object', additionalProperties: { type: 'string' } } as const;

const lambdaIntegration = {
  type: 'object',
  additionalProperties: false,
  required: ['type', 'handler'],
  properties: {
    type: { const: 'LAMBDA' },
    handler: { type: 'string', pattern: '^[^\\s]+\\.[A-Za-z_$][A-Za-z0-9_$]*$', description: 'file.export, relative to the API file' },
    timeoutInMillis: { type: 'integer', minimum: 50, maximum: 300000 },
    payloadFormatVersion: { enum: ['1.0', '2.0'] },
  },
} as const;

const mockIntegration = {
  type: 'object',
  additionalProperties: false,
  required: ['type'],
  properties: {
    type: { const: 'MOCK' },
    response: {
      type: 'object',
      additionalProperties: false,
      properties: {
        statusCode: { type: 'integer', minimum: 100, maximum: 599 },
        body: { type: 'string' },
        headers: headersMap,
      },
    },
    timeoutInMillis: { type: 'integer', minimum: 50, maximum: 300000 },
  },
} as const;

const ttl = { type: 'integer', minimum: 0, maximum: 3600 } as const;
const identitySource = { oneOf: [{ type: 'string', minLength: 1 }, { type: 'array', minItems: 1, items: { type: 'string', minLength: 1 } }] } as const;

export const authorizerSchema = {
  type: 'object',
  required: ['type'],
  discriminator: { propertyName: 'type' },
  oneOf: [
    {
      type: 'object',
      additionalProperties: false,
      required: ['type', 'handler', 'identitySource'],
      properties: {
        type: { const: 'REQUEST' },
        handler: lambdaIntegration.properties.handler,
        identitySource,
        resultTtlInSeconds: ttl,
        enableSimpleResponses: { type: 'boolean' },
      },
    },
    {
      type: 'object',
      additionalProperties: false,
      required: ['type', 'handler'],
      properties: {
        type: { const: 'TOKEN' },
        handler: lambdaIntegration.properties.handler,
        identitySource: { type: 'string', minLength: 1 },
        identityValidationExpression: { type: 'string', minLength: 1 },
        resultTtlInSeconds: ttl,
      },
    },
    {
      type: 'object',
      additionalProperties: false,
      required: ['type', 'issuer', 'audience', 'jwksUri'],
      properties: {
        type: { const: 'JWT' },
        issuer: { type: 'string', minLength: 1 },
        audience: { type: 'array', minItems: 1, maxItems: 50, items: { type: 'string', minLength: 1 } },
        jwksUri: { type: 'string', pattern: '^https?://' },
        identitySource,
        resultTtlInSeconds: ttl,
      },
    },
  ],
} as const;

const timeoutInMillis = { type: 'integer', minimum: 50, maximum: 300000 } as const;
const httpMethod = { enum: ['GET', 'POST', 'PUT', 'PATCH', 'DELETE', 'HEAD', 'OPTIONS'] } as const;
const templates = { type: 'object', additionalProperties: { type: 'string', maxLength: 300 * 1024 } } as const;

const httpProxyIntegration = {
  type: 'object',
  additionalProperties: false,
  required: ['type', 'uri'],
  properties: { type: { const: 'HTTP_PROXY' }, uri: { type: 'string', pattern: '^(https?://|\\$\\{stageVariables\\.)' }, method: httpMethod, timeoutInMillis },
} as const;

const httpIntegration = {
  type: 'object',
  additionalProperties: false,
  required: ['type', 'uri'],
  properties: {
    type: { const: 'HTTP' },
    uri: httpProxyIntegration.properties.uri,
    method: httpMethod,
    timeoutInMillis,
    requestTemplates: templates,
    responseTemplates: templates,
    passthroughBehavior: { enum: ['WHEN_NO_MATCH', 'WHEN_NO_TEMPLATES', 'NEVER'] },
    templateSelectionExpression: { type: 'string' },
  },
} as const;

const redisStreamIntegration = {
  type: 'object',
  additionalProperties: false,
  required: ['type', 'stream'],
  properties: { type: { const: 'REDIS_STREAM' }, stream: { type: 'string', minLength: 1 }, maxLen: { type: 'integer', minimum: 1 }, timeoutInMillis },
} as const;

export const integrationSchema = {
  type: 'object',
  required: ['type'],
  discriminator: { propertyName: 'type' },
  oneOf: [lambdaIntegration, mockIntegration, httpProxyIntegration, httpIntegration, redisStreamIntegration],
} as const;

const httpRoute = {
  type: 'object',
  additionalProperties: false,
  required: ['integration'],
  properties: {
    integration: { $ref: '#/definitions/integration' },
    authorizer: { type: 'string' },
    authorizationScopes: { type: 'array', maxItems: 10, items: { type: 'string', minLength: 1 } },
    apiKeyRequired: { type: 'boolean' },
    requestModel: { type: ['string', 'object'] },
    requestParameters: { type: 'array', items: { type: 'string', pattern: '^method\\.request\\.(querystring|multivaluequerystring|header|multivalueheader|path)\\.[^\\s]+$' } },
    requestValidator: { enum: ['BODY', 'PARAMETERS', 'ALL', 'NONE'] },
    throttling: throttle,
    description: { type: 'string' },
  },
} as const;

const wsRoute = {
  type: 'object',
  additionalProperties: false,
  properties: {
    integration: { $ref: '#/definitions/integration' },
    routeResponse: { type: 'boolean', description: 'two-way route: the integration response is sent back to the client' },
    authorizer: { type: 'string' },
    authorizationScopes: { type: 'array', maxItems: 10, items: { type: 'string', minLength: 1 } },
    apiKeyRequired: { type: 'boolean' },
    requestModel: { type: ['string', 'object'] },
    throttling: throttle,
    description: { type: 'string' },
  },
} as const;

export const apiDefinitionSchema = {
  $id: 'https://gatehouse.dev/schema/api-definition.json',
  type: 'object',
  additionalProperties: false,
  required: ['name', 'stages'],
  properties: {
    name: { type: 'string', pattern: '^[A-Za-z0-9][A-Za-z0-9 _.-]{0,127}$' },
    description: { type: 'string' },
    apiId: { type: 'string', pattern: '^[a-z0-9]{10}$' },
    region: { type: 'string', pattern: '^[a-z]{2}(-[a-z]+)+-\\d$' },
    accountId: { type: 'string', pattern: '^\\d{12}$' },
    stages: {
      type: 'object',
      minProperties: 1,
      propertyNames: { pattern: '^[A-Za-z0-9_-]{1,128}$' },
      additionalProperties: {
        type: 'object',
        additionalProperties: false,
        properties: {
          description: { type: 'string' },
          throttling: {
            type: 'object',
            additionalProperties: false,
            properties: { default: throttle, routes: { type: 'object', additionalProperties: throttle } },
          },
          variables: {
            type: 'object',
            maxProperties: 100,
            propertyNames: { pattern: '^[A-Za-z0-9_]{1,64}$' },
            additionalProperties: { type: 'string', pattern: '^[A-Za-z0-9\\-._~:/?#&=,]+$', maxLength: 512 },
          },
        },
      },
    },
    throttling: throttle,
    apiKeySource: { enum: ['HEADER', 'AUTHORIZER'] },
    clientLimits: {
      type: 'object',
      additionalProperties: false,
      properties: { perConnection: throttle, perClientIp: throttle },
    },
    usagePlans: {
      type: 'object',
      propertyNames: { pattern: '^[A-Za-z0-9_-]{1,128}$' },
      additionalProperties: {
        type: 'object',
        additionalProperties: false,
        required: ['apiKeys'],
        properties: {
          description: { type: 'string' },
          throttle,
          quota: {
            type: 'object',
            additionalProperties: false,
            required: ['limit', 'period'],
            properties: { limit: { type: 'integer', minimum: 0 }, period: { enum: ['DAY', 'WEEK', 'MONTH'] } },
          },
          routes: { type: 'object', additionalProperties: throttle },
          apiKeys: { type: 'array', items: { type: 'string', minLength: 1 } },
        },
      },
    },
    limits: {
      type: 'object',
      additionalProperties: false,
      properties: {
        maxFrameBytes: { type: 'integer', minimum: 125, maximum: 16 * 1024 * 1024 },
        maxMessageBytes: { type: 'integer', minimum: 125, maximum: 16 * 1024 * 1024 },
        idleTimeoutSeconds: positiveInt,
        maxConnectionDurationSeconds: positiveInt,
        integrationTimeoutMillis: { type: 'integer', minimum: 50, maximum: 300000 },
        authorizerTimeoutMillis: { type: 'integer', minimum: 50, maximum: 300000 },
        maxSendBufferBytes: { type: 'integer', minimum: 1024 },
        maxPostBytes: { type: 'integer', minimum: 1, maximum: 16 * 1024 * 1024 },
        maxHttpBodyBytes: { type: 'integer', minimum: 1 },
        drainTimeoutSeconds: { type: 'integer', minimum: 0, maximum: 600 },
      },
    },
    management: {
      type: 'object',
      additionalProperties: false,
      properties: {
        accessKeys: {
          type: 'array',
          items: {
            type: 'object',
            additionalProperties: false,
            required: ['accessKeyId', 'secretAccessKey'],
            properties: {
              accessKeyId: { type: 'string', pattern: '^[A-Za-z0-9]{4,128}$' },
              secretAccessKey: { type: 'string', minLength: 8 },
            },
          },
        },
        bearerToken: { type: 'string', minLength: 16 },
        authentication: { enum: ['AWS_IAM', 'NONE'], description: 'NONE disables signature checks (development only)' },
      },
    },
    authorizers: {
      type: 'object',
      maxProperties: 10,
      propertyNames: { pattern: '^[A-Za-z0-9_-]{1,128}$' },
      additionalProperties: { $ref: '#/definitions/authorizer' },
    },
    http: {
      type: 'object',
      additionalProperties: false,
      required: ['routes'],
      properties: {
        mode: { enum: ['REST', 'HTTP'], description: 'REST: unknown paths get 403 Missing Authentication Token, payload 1.0 by default; HTTP: 404 Not Found, payload 2.0' },
        routes: { type: 'object', minProperties: 1, additionalProperties: httpRoute },
        cors: {
          type: 'object',
          additionalProperties: false,
          properties: {
            allowOrigins: { type: 'array', items: { type: 'string' } },
            allowMethods: { type: 'array', items: { type: 'string' } },
            allowHeaders: { type: 'array', items: { type: 'string' } },
            exposeHeaders: { type: 'array', items: { type: 'string' } },
            maxAge: { type: 'integer', minimum: -1, maximum: 86400 },
            allowCredentials: { type: 'boolean' },
          },
        },
        binaryMediaTypes: { type: 'array', items: { type: 'string', pattern: '^[^/\\s]+/[^/\\s]+$' } },
        gatewayResponses: gatewayResponsesSchema,
      },
    },
    websocket: {
      type: 'object',
      additionalProperties: false,
      required: ['routeSelectionExpression', 'routes'],
      properties: {
        routeSelectionExpression: { type: 'string', minLength: 1 },
        description: { type: 'string' },
        routes: {
          type: 'object',
          minProperties: 1,
          propertyNames: { pattern: '^(\\$connect|\\$disconnect|\\$default|[^$][^\\s]{0,127})$' },
          additionalProperties: wsRoute,
        },
      },
    },
  },
  definitions: { integration: integrationSchema, authorizer: authorizerSchema },
} as const;
